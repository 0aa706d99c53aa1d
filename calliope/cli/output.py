"""How the ``calliope`` command prints what it lists.

One :class:`Listing` per listing, in one of three forms: ``--json`` (one
JSON object per row and line, for programs), a table drawn by ``rich`` when
stdout is a terminal, or tab-separated lines under a header line when it is
not (a pipe, a file: ``cut``, ``sort`` and ``awk`` read them). Rows are
printed as they come, in chunks of at most :data:`CHUNK` rows, so a listing
of a million rows runs in constant memory.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

__all__ = ["CHUNK", "Listing", "stdout_is_terminal"]

CHUNK = 200
"""Rows a terminal table holds before it is drawn (and a new one begun)."""


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal (tables, colours) or not (plain lines)."""
    return sys.stdout.isatty()


class Listing:
    """Rows with the given ``columns`` (JSON keys as well as headings),
    printed as JSON lines, a terminal table, or tab-separated lines; use as
    a context manager so the last chunk is drawn."""

    def __init__(self, columns: Sequence[str], *, as_json: bool, title: str | None = None) -> None:
        self._columns = list(columns)
        self._as_json = as_json
        self._title = title
        self._terminal = not as_json and stdout_is_terminal()
        self._chunk: list[list[str]] = []
        self._drawn = False
        if not as_json and not self._terminal:
            if title:
                click.echo(f"# {title}")
            click.echo("\t".join(self._columns))

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()

    def add(self, *values: Any) -> None:
        """One row: a value per column, in the columns' order."""
        if self._as_json:
            click.echo(
                json.dumps(dict(zip(self._columns, values, strict=True)), ensure_ascii=False)
            )
            return
        cells = [_cell(value, self._terminal) for value in values]
        if not self._terminal:
            click.echo("\t".join(cells))
            return
        self._chunk.append(cells)
        if len(self._chunk) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        """Draw the rows held so far (a terminal table)."""
        if not self._terminal or (self._drawn and not self._chunk):
            return
        table = Table(
            title=None if self._drawn else self._title,
            show_header=not self._drawn,
            title_justify="left",
        )
        for column in self._columns:
            table.add_column(column, overflow="fold")  # (wrapped, never cut short)
        for cells in self._chunk:
            table.add_row(*cells)
        Console().print(table)
        self._chunk.clear()
        self._drawn = True


def _cell(value: Any, terminal: bool) -> str:
    """A value as a cell: None and empty lists as ``-``, lists joined by
    commas, floats to 2 places (thousands separated on a terminal only)."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value) or "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if terminal else f"{value:.2f}"
    return _escaped(str(value))


def _escaped(text: str) -> str:
    """``text`` with its control characters (a tab or newline in a stream
    id would break a row) as Python escapes: ``\\t``, ``\\n``, ``\\x1b``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
