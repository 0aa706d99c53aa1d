"""Every command of the README's "The `calliope` command" block runs as
written, in order, through the console script: on the store the demo line
leaves in ./shop, and the PostgreSQL line on a real server."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
from pathlib import Path

from tests.integration.test_cli import calliope_command
from tests.postgres import fresh_schema, postgres_dsn

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    """The block's commands, each split as a shell would (comments dropped)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The `calliope` command") :]
    block = re.search(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    assert block is not None
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines()]


def test_every_readme_command_runs_as_written(tmp_path: Path) -> None:
    commands = readme_commands()
    assert [c[:2] for c in commands[:2]] == [["calliope", "demo"], ["calliope", "streams"]]
    names = {c[1] for c in commands}
    assert names >= {"demo", "streams", "show", "tail", "feed", "replicas", "projections"}
    assert names >= {"verify", "repair", "bench"}
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        demo = [*calliope_command(), "demo", f"{dsn}?schema={schema}"]  # (data to look at)
        subprocess.run(demo, check=True, capture_output=True, timeout=300)
        for command in commands:
            arguments = [
                f"{dsn}?schema={schema}" if a.startswith("postgresql://") else a
                for a in command[1:]
            ]
            process = subprocess.Popen(
                [*calliope_command(), *arguments],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            following = "-f" in arguments
            try:
                out, err = process.communicate(timeout=3 if following else 600)
            except subprocess.TimeoutExpired:
                assert following, command
                process.send_signal(signal.SIGINT)  # Ctrl-C ends -f
                out, err = process.communicate(timeout=30)
            assert "Traceback" not in err, (command, err)
            assert process.returncode in ((0, -signal.SIGINT) if following else (0,)), (
                command,
                err,
            )
            if arguments[0] not in ("repair", "bench"):
                assert out.strip(), command
