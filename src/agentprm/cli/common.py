"""Small helpers shared by CLI commands: input checks that end in one line naming the fix."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from agentprm.errors import UserError


def writable_path(path: Path) -> Path:
    """Fail early (one line) when `path` cannot be written, before any long work starts."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create directory {parent}: {e.strerror}; choose another --out") from None
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a file path to --out")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path}: permission denied; choose another --out")
    return path


def writable_dir(path: Path, flag: str) -> Path:
    """Fail early (one line) when folder `path` cannot be created or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create folder {path}: {e.strerror}; choose another {flag}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"cannot write in {path}: permission denied; choose another {flag}")
    return path


def existing_file(path: Path, what: str = "file") -> Path:
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    return path


@contextmanager
def resumable(what: str):
    """Ctrl-C ends the command with one line saying that its state is kept and how to resume (exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        print(f"\n{what}: interrupted; what finished is saved: rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None


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


# Training curves (agentprm.tracking), Hugging Face's option name and values.
ReportToOpt = Annotated[
    str,
    typer.Option(
        "--report-to",
        help="Where training curves go: tensorboard (event files in OUT/tb), wandb (needs the wandb "
        "package), none, or a comma list.",
    ),
]
