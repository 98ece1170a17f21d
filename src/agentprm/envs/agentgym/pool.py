"""Server ids and the per-process prefix cache: live handles, and idle ids parked for reuse."""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from agentprm.envs.agentgym.transport import Remote, RetryPolicy, Target
from agentprm.errors import EnvError


@dataclass(eq=False)
class Handle:
    """One live server env id and the state it is in (task + actions sent since reset)."""

    target: Target
    sid: int
    task_id: str | None = None
    prefix: tuple[str, ...] = ()
    users: int = 0  # env objects whose logical state this handle currently serves (copy-on-write)
    dead: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class IdlePool:
    """Idle server ids parked by closed/collected envs, reused by longest matching action prefix.

    Bounded (LRU); an evicted id is closed on the server later, from a normal call, never from a finalizer.
    """

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._idle: OrderedDict[int, Handle] = OrderedDict()  # key: id(handle)
        self._to_close: list[Handle] = []
        self._lock = threading.Lock()

    def park(self, h: Handle) -> None:
        with self._lock:
            if h.dead or self.capacity <= 0:
                self._to_close.append(h)
                return
            self._idle[id(h)] = h
            while len(self._idle) > self.capacity:
                self._to_close.append(self._idle.popitem(last=False)[1])

    def take(self, target: Target, task_id: str, prefix: tuple[str, ...]) -> Handle | None:
        """The idle handle of `target` at the longest prefix of (task_id, prefix), else any idle one."""
        with self._lock:
            best, best_len = None, -1
            for h in self._idle.values():
                if h.target != target:
                    continue
                if h.task_id == task_id and len(h.prefix) <= len(prefix) and prefix[: len(h.prefix)] == h.prefix:
                    if len(h.prefix) > best_len:
                        best, best_len = h, len(h.prefix)
                elif best is None:
                    best = h  # reusable after a reset
            if best is not None:
                del self._idle[id(best)]
            return best

    def drain_closes(self) -> list[Handle]:
        with self._lock:
            out, self._to_close = self._to_close, []
            return out

    def clear(self) -> list[Handle]:
        with self._lock:
            out = list(self._idle.values()) + self._to_close
            self._idle.clear()
            self._to_close = []
            return out


POOL = IdlePool()


@dataclass
class Slot:
    """An env's claim on a handle (separate from the env so a finalizer can release it)."""

    handle: Handle | None = None


def release(slot: Slot) -> None:
    """Finalizer-safe: drop this env's claim on its handle; park it when nobody else uses it. No I/O."""
    h, slot.handle = slot.handle, None
    if h is None:
        return
    with h.lock:
        h.users -= 1
        free = h.users <= 0
    if free:
        POOL.park(h)


def close_on_server(handles: list[Handle], policy: RetryPolicy) -> None:
    quick = RetryPolicy(retries=0, timeout_s=min(5.0, policy.timeout_s), connect_timeout_s=1.0)
    for h in handles:
        try:
            Remote(h.target, quick).close(h.sid)
        except EnvError:
            pass  # best effort: the server evicts idle ids (ours does) or recycles them (upstream WebShop)


@atexit.register
def _close_parked() -> None:
    close_on_server(POOL.clear(), RetryPolicy())
