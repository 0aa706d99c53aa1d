"""Where the tests find PostgreSQL, and a fresh schema per test.

``CALLIOPE_POSTGRES_DSN`` names the server; without it, the machine's usual
``postgresql://postgres@127.0.0.1:5432/test`` if it answers, else a
throwaway server started with ``initdb``/``pg_ctl`` on a free port (stopped
when the tests end), else the PostgreSQL tests skip with the reason. With
``CALLIOPE_REQUIRE_POSTGRES=1`` (as .ci/run sets) that skip is a failure.
Each test gets its own schema, dropped after it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest

__all__ = ["fresh_schema", "postgres_dsn"]

_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
_found: list[str | None] = []  # the answer, once looked for (per test process)


def _answers(dsn: str) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect(dsn, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _throwaway_server() -> str | None:
    """A server of our own in a temporary directory, or None if this
    machine cannot start one."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        return None
    directory = tempfile.mkdtemp(prefix="calliope-pg-")
    data = os.path.join(directory, "data")
    port = _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # (the server refuses to run as root)
        shutil.chown(directory, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(
            [*as_user, initdb, "-D", data, "-U", "postgres", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *as_user,
                pg_ctl,
                "-D",
                data,
                "-l",
                os.path.join(directory, "log"),
                "-o",
                f"-p {port} -k {directory} -c listen_addresses=127.0.0.1",
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError, KeyError, LookupError):
        return None

    def stop() -> None:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], check=False)
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def postgres_dsn() -> str:
    """The DSN to test against; skips (or, when required, fails) without one."""
    if not _found:
        dsn = os.environ.get("CALLIOPE_POSTGRES_DSN")
        if dsn is None:
            dsn = _DEFAULT if _answers(_DEFAULT) else _throwaway_server()
        elif not _answers(dsn):
            dsn = None
        _found.append(dsn)
    dsn = _found[0]
    if dsn is None:
        reason = (
            "no PostgreSQL: CALLIOPE_POSTGRES_DSN is unset or does not answer, "
            f"{_DEFAULT} does not answer, and no initdb/pg_ctl could start one"
        )
        if os.environ.get("CALLIOPE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CALLIOPE_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return dsn


@contextlib.contextmanager
def fresh_schema(dsn: str) -> Iterator[str]:
    """A schema name no one uses; dropped (with all it holds) afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield schema
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
