"""Ctrl-C that never leaves a half-applied optimiser step.

Training loops catch KeyboardInterrupt, write a checkpoint at the last finished step and re-raise. A
SIGINT that lands inside `optimizer.step()` would leave some parameters (or Adam moments) updated and
others not, and that checkpoint would then resume from a state no run ever had: inside `atomic()` the
signal is held until the block ends (the block is short: clipping + the update), then raised.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def atomic() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are delivered to the main thread only
        return
    pending: list[object] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt
