"""The ``calliope`` command: look inside a store (a directory or a
``postgresql://`` DSN) without writing code, check and repair it, run the
demo and the benchmarks. Read-only unless a command says otherwise (only
``repair`` and ``demo`` write).

Exit codes: 0 done; 1 the store refused, or the user declined (one line on
stderr saying what to do); 2 the command line was wrong (click's usage
error); 3 ``verify`` or ``repair`` found damage (each line names the file
and offset).
"""

from __future__ import annotations

import click

from calliope.cli.bench import bench
from calliope.cli.demo import demo
from calliope.cli.follow import feed, tail
from calliope.cli.inspect import show, streams
from calliope.cli.projections import projections
from calliope.cli.repair import repair
from calliope.cli.replicas import replicas
from calliope.cli.verify import verify

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="calliope", prog_name="calliope")
def main() -> None:
    """Look inside a Calliope store, check and repair it, run the demo and
    the benchmarks. TARGET is a directory or a postgresql:// DSN (?schema=name
    to pick the schema). Exit codes: 0 done, 1 refused, 2 usage, 3 damage."""


main.add_command(demo)
main.add_command(streams)
main.add_command(show)
main.add_command(tail)
main.add_command(feed)
main.add_command(replicas)
main.add_command(projections)
main.add_command(verify)
main.add_command(repair)
main.add_command(bench)
