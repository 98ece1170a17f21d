"""Progress display shared by the CLI commands and the pipeline: a rich bar on a terminal, plain
progress lines elsewhere (a log file, a pipe, CI)."""

from __future__ import annotations

import os
import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress() -> Progress:
    """A rich progress bar on a terminal; elsewhere (a log file, a pipe, CI) plain progress lines."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    if sys.stdout.isatty():
        return Progress(*columns)
    return LineProgress(*columns, disable=True)


class LineProgress(Progress):
    """Progress for output that is not a terminal: one line per task at most every `every` seconds
    (env AGENTPRM_PROGRESS_SECONDS, default 10) and when it completes, e.g.
    `sft: 12/37 (32%) loss 1.234, 0:01:05 elapsed, ~0:02:15 left`."""

    def __init__(self, *args, every: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.every = every if every is not None else float(os.environ.get("AGENTPRM_PROGRESS_SECONDS", "10"))
        self._last: dict = {}

    def update(self, task_id, **kwargs) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self._report(task_id)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._report(task_id)

    def _report(self, task_id) -> None:
        task = self._tasks[task_id]
        now = time.monotonic()
        finished = task.total is not None and task.completed >= task.total
        last = self._last.get(task_id)
        if last == "done" or (not finished and last is not None and now - last < self.every):
            return
        self._last[task_id] = "done" if finished else now
        if task.total:
            count = f"{task.completed:g}/{task.total:g} ({task.completed / task.total:.0%})"
        else:
            count = f"{task.completed:g}"
        status = task.fields.get("status", "")
        line = f"{task.description}: {count}" + (f" {status}" if status else "")
        line += f", {_hms(task.elapsed or 0)} elapsed"
        if task.time_remaining is not None and not finished:
            line += f", ~{_hms(task.time_remaining)} left"
        print(line, flush=True)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
