"""One pass/warn/fail table for every operator command, and the exit code it implies."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TextIO

from rich import box
from rich.console import Console
from rich.table import Table

Status = Literal["pass", "warn", "fail"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Check:
    """The outcome of one check.

    Attributes:
        name: short stable name (``instance offering``, ``streaming``); tests and scripts key
            on it.
        status: ``pass``, ``warn`` (works, but look) or ``fail`` (will not work).
        detail: one line saying what was found and, on warn/fail, what to change.
    """

    name: str
    status: Status
    detail: str


def console(out: TextIO | None = None) -> Console:
    """A rich console on ``out`` (stdout by default); plain text when it is not a terminal."""
    stream = out if out is not None else sys.stdout
    return Console(file=stream, width=160 if not stream.isatty() else None, highlight=False, soft_wrap=False)


def render_checks(title: str, checks: Sequence[Check], out: TextIO | None = None) -> None:
    """Print ``checks`` as a table (CHECK, RESULT, DETAIL) and a closing count line.

    The closing line reads ``N passed, N failed`` (warnings counted apart) so a person and a CI
    log see the verdict at a glance.
    """
    table = Table(title=title, box=box.SIMPLE, show_lines=False, expand=False)
    table.add_column("CHECK", no_wrap=True)
    table.add_column("RESULT", no_wrap=True)
    table.add_column("DETAIL", overflow="fold")
    styles = {"pass": "green", "warn": "yellow", "fail": "bold red"}
    for c in checks:
        table.add_row(c.name, f"[{styles[c.status]}]{c.status.upper()}[/]", c.detail)
    con = console(out)
    con.print(table)
    n = {s: sum(1 for c in checks if c.status == s) for s in ("pass", "warn", "fail")}
    con.print(f"{n['pass']} passed, {n['fail']} failed, {n['warn']} warning(s)")


def exit_code(checks: Iterable[Check]) -> int:
    """0 when no check failed (warnings allowed), else 1."""
    return EXIT_FAILED if any(c.status == "fail" for c in checks) else EXIT_OK
