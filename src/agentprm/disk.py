"""Writing on a disk that may fill up: whole files or none, and one clear error naming the path.

A full disk surfaces differently per writer: `OSError(ENOSPC)` from Python's own files, a
`SafetensorError` whose text says "No space left on device", and from `torch.save` only a bare
`RuntimeError` ("unexpected pos ..."). `writing(path)` turns any of them into one `DiskFullError` (a
`UserError`: the CLI prints one line and exits 2) after removing what the failed write left, so a rerun
once space is freed starts from the last complete state. Small records (configs, markers, stage records)
go through `atomic_write_text`: a reader sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agentprm.errors import UserError

# torch.save reports a full disk only as a failed write; below this much free space we call it full.
NEARLY_FULL_BYTES = 1 << 20


class DiskFullError(UserError):
    """No space left on the device holding `path`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        super().__init__(
            f"no space left on device writing {self.path}; free space on that disk (or write elsewhere) and rerun "
            "the same command: finished work is kept and it resumes"
        )


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def is_disk_full(exc: BaseException, path: str | os.PathLike) -> bool:
    """Whether `exc`, raised while writing `path`, comes from a full disk."""
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left on device" in str(exc) or "StorageFull" in str(exc):
        return True
    if isinstance(exc, RuntimeError):  # torch.save: "[enforce fail ...] unexpected pos ..." / "file write failed"
        free = _free_bytes(Path(path))
        return free is not None and free < NEARLY_FULL_BYTES
    return False


@contextmanager
def writing(path: str | os.PathLike, cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Run the writes of `path` inside; on a full disk call `cleanup` (remove the partial output) and raise
    `DiskFullError(path)`. Other errors pass through unchanged (after `cleanup` too)."""
    try:
        yield
    except BaseException as e:
        full = not isinstance(e, KeyboardInterrupt) and is_disk_full(e, path)  # checked before cleanup frees space
        if cleanup is not None:
            cleanup()
        if full and not isinstance(e, DiskFullError):
            raise DiskFullError(path) from e
        raise


def remove(path: Path) -> Callable[[], None]:
    """A `cleanup` for `writing`: remove the file or folder `path` if it is there."""

    def run() -> None:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    return run


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` whole or not at all (a temp file beside it, fsynced, then renamed over it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with writing(path, cleanup=remove(tmp)):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
