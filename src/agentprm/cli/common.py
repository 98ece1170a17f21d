"""Small helpers shared by CLI commands: input checks that end in one line naming the fix."""

from __future__ import annotations

import os
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


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


# Training curves (agentprm.tracking), Hugging Face's option name and values.
ReportToOpt = Annotated[str, typer.Option(
    "--report-to", help="Where training curves go: tensorboard (event files in OUT/tb), wandb (needs the wandb "
    "package), none, or a comma list.")]
