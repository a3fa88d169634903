"""Progress bars for commands that can run for more than a few seconds (imports, demo, rebuild-boards,
exports, rate). On a terminal they draw a `rich` progress bar on stderr; elsewhere (a pipe, a file, CI)
they are silent, so scripted output stays clean."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Step(Protocol):
    def __call__(self, advance: int = 1, *, total: int | None = None, description: str | None = None) -> None: ...


def _silent(advance: int = 1, *, total: int | None = None, description: str | None = None) -> None:
    return None


def interactive() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Step]:
    """`with progress("导入站点", total=n) as step: ... step()`; `step(total=...)` once the size is known,
    `step(0, description=...)` to rename the current stage."""
    if not interactive():
        yield _silent
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)

        def step(advance: int = 1, *, total: int | None = None, description: str | None = None) -> None:
            kwargs: dict[str, object] = {}
            if total is not None:
                kwargs["total"] = total
            if description is not None:
                kwargs["description"] = description
            bar.update(task, advance=advance, **kwargs)  # type: ignore[arg-type]

        yield step
