"""``python -m calliope``: the ``calliope`` command."""

from calliope.cli import main

main()
