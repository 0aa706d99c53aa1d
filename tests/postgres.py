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
from pathlib import Path

import pytest

__all__ = ["ThrowawayServer", "fresh_schema", "postgres_dsn"]

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


class ThrowawayServer:
    """A PostgreSQL server of our own, in a temporary directory, on a free
    port (never the machine's shared one): for tests that stop or restart
    a server."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self._pg_ctl = pg_ctl
        self._directory = tempfile.mkdtemp(prefix="calliope-pg-")
        self._data = os.path.join(self._directory, "data")
        self.port = _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # (the server refuses to run as root)
            shutil.chown(self._directory, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*self._as_user, initdb, "-D", self._data, "-U", "postgres", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        self._control("start")
        atexit.register(self.stop)

    @classmethod
    def start(cls) -> ThrowawayServer | None:
        """A new running server, or None if this machine cannot start one."""
        initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        if initdb is None or pg_ctl is None:
            return None
        try:
            return cls(initdb, pg_ctl)
        except (OSError, subprocess.CalledProcessError, KeyError, LookupError):
            return None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _control(self, action: str, *options: str) -> None:
        subprocess.run(
            [
                *self._as_user,
                self._pg_ctl,
                "-D",
                self._data,
                "-l",
                os.path.join(self._directory, "log"),
                "-o",
                f"-p {self.port} -k {self._directory} -c listen_addresses=127.0.0.1",
                "-w",
                *options,
                action,
            ],
            check=True,
            capture_output=True,
        )

    def restart(self) -> None:
        """Stop at once (``-m immediate``: a crash, as far as clients can
        tell) and start again."""
        self._control("restart", "-m", "immediate")

    def stop(self) -> None:
        if os.path.isdir(self._data):
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                self._control("stop", "-m", "immediate")
        shutil.rmtree(self._directory, ignore_errors=True)


def _throwaway_server() -> str | None:
    server = ThrowawayServer.start()
    return None if server is None else server.dsn


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


@contextlib.contextmanager
def file_or_postgres(kind: str, directory: Path) -> Iterator[str]:
    """A store target of ``kind``: ``"file"`` (``directory``/store) or
    ``"postgres"`` (a fresh schema, dropped afterwards)."""
    if kind == "file":
        yield str(directory / "store")
        return
    dsn = postgres_dsn()
    with fresh_schema(dsn) as schema:
        yield f"{dsn}?schema={schema}"
