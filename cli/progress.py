"""Progress bars, on stderr so that stdout carries only results (ids, tables, URLs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

stderr = Console(stderr=True, highlight=False)

#: Told a job's state: the fraction done (None while unknown) and a few words.
JobReport = Callable[[float | None, str], None]


@contextmanager
def transfer(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A bar of bytes moved; yields the function to call with each chunk's size."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr) as bar:
        task = bar.add_task(description, total=total)
        yield lambda size: bar.advance(task, size)


@contextmanager
def job(description: str) -> Iterator[JobReport]:
    """A bar of a server-side job's progress, with the state the server reports."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}"),
    )
    with Progress(*columns, console=stderr) as bar:
        task = bar.add_task(description, total=1.0, state="")

        def report(fraction: float | None, state: str) -> None:
            bar.update(task, completed=fraction or 0.0, state=state)

        yield report
