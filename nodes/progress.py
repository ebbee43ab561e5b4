"""Progress on stderr for commands that run longer than a few seconds (rich): a bar when the amount of work
is known (`stromledger sim`: seeds), a spinner with the current step and the elapsed time when it is not
(benchmarks). On a terminal only; in a log file nothing but what the command prints itself."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional


class Progress:
    def __init__(self, bar, task):
        self._bar = bar
        self._task = task

    @property
    def console(self):
        return self._bar.console

    def advance(self, steps: int = 1) -> None:
        self._bar.advance(self._task, steps)

    def step(self, text: str) -> None:
        """Show `text` as the current step (and print it above the bar, for the record)."""
        self._bar.console.print(f"[dim]{text}[/]", highlight=False)
        self._bar.update(self._task, description=text[:60])


@contextlib.contextmanager
def progress_bar(description: str, total: Optional[int] = None, *, console=None) -> Iterator[Progress]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    with Bar(*columns, console=console or Console(stderr=True), transient=True) as bar:
        yield Progress(bar, bar.add_task(description, total=total))
