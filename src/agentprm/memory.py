"""This process's memory: resident set (RSS), its peak, and handing cached memory back between stages.

Linux only (`/proc/self`); elsewhere the readers return NaN. docs/search.md
("Memory") has what holds memory in a collect and in the pipeline, with the measurements.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import threading
from pathlib import Path

from agentprm.errors import UserError

_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> float:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def rss_mib() -> float:
    """Resident set size now, MiB."""
    return _status_kib("VmRSS:") / 1024


def peak_rss_mib() -> float:
    """Peak resident set size of the process so far (`VmHWM`), MiB."""
    return _status_kib("VmHWM:") / 1024


class PeakSampler:
    """The highest RSS seen while the `with` block runs, sampled every `interval` seconds on a thread
    (`peak_mib`). Not `VmHWM` reset through /proc/self/clear_refs: that also resets what `getrusage`
    and `/usr/bin/time` report as the whole process's peak when it exits."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak_mib = float("nan")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            now = rss_mib()
            if not now <= self.peak_mib:  # NaN-safe max
                self.peak_mib = now
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakSampler:
        self.peak_mib = rss_mib()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        now = rss_mib()
        if not now <= self.peak_mib:
            self.peak_mib = now


def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _libc()


def malloc_trim() -> bool:
    """Give glibc's free heap memory back to the kernel (False where there is no glibc).

    Freed blocks below glibc's mmap threshold stay in its heap (the threshold rises to the size of the
    largest freed block, up to 32 MB, so the prefix store's entries of a few MB end up there); after a
    stage that freed a 1 GiB prefix store the heap held ~1 GB of free pages that `malloc_trim` returned
    (docs/search.md, Memory)."""
    fn = getattr(_LIBC, "malloc_trim", None)
    if fn is None:
        return False
    fn(0)
    return True


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)
_TRIM_THRESHOLD_DEFAULT = 128 << 10  # glibc's, where `MALLOC_MMAP_THRESHOLD_` leaves it


def set_mmap_threshold(nbytes: int) -> bool:
    """Fix glibc's mmap threshold for this process at `nbytes` (what `MALLOC_MMAP_THRESHOLD_=nbytes` does at
    start-up); returns False, with a one-line warning on stderr, where there is no glibc `mallopt`.

    Blocks of at least `nbytes` are then mmapped, and freeing one hands its pages straight back to the
    kernel. By default the threshold is dynamic: it rises to the size of the largest freed mmapped block
    (up to 32 MiB), so a collect's prefix-store entries (a few MB each) end up in the heap, where freed
    ones leave holes the next, larger ones do not fit (+750 MiB of free heap over a 10k BabyAI collect,
    docs/search.md, Memory). Like the variable, this also turns the dynamic rule off and puts the trim
    threshold back at glibc's default (128 KiB), which the rule may have raised by now. Affects blocks
    allocated from now on."""
    if not 0 <= nbytes <= MMAP_THRESHOLD_MAX:
        raise UserError(
            f"mmap threshold {nbytes / 2**20:g} MiB: glibc takes 1 to {MMAP_THRESHOLD_MAX >> 20} MiB "
            "(0: its dynamic default); pick e.g. 1 MiB"
        )
    fn = getattr(_LIBC, "mallopt", None)
    if fn is None:
        print("agentprm: warning: no glibc mallopt here; the mmap threshold is left as it is", file=sys.stderr)
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(fn(_M_MMAP_THRESHOLD, nbytes)) and bool(fn(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_DEFAULT))


def _mallinfo_mib(field: str) -> float:
    fn = getattr(_LIBC, "mallinfo2", None)
    if fn is None:
        return float("nan")
    fn.restype = _Mallinfo2
    return getattr(fn(), field) / 2**20


def heap_free_mib() -> float:
    """Free bytes inside glibc's heap, MiB: memory taken from the kernel and not in use (NaN without glibc
    2.33+). What `malloc_trim` can give back; it grows when freed blocks cannot be reused."""
    return _mallinfo_mib("fordblks")


def mmapped_mib() -> float:
    """Bytes glibc holds in mmapped blocks (outside its heap), MiB (NaN without glibc 2.33+): with a low
    fixed mmap threshold the prefix store's entries land here, and go back to the kernel when freed."""
    return _mallinfo_mib("hblkhd")


# Long rollouts give glibc's free heap back to the kernel once it passes this many MiB (`HeapTrimmer`).
HEAP_TRIM_MIB = 256


class HeapTrimmer:
    """Keep glibc's free heap under `max_free_mib` during a long loop: every `every` ticks, read the free heap
    (`mallinfo2`) and, past the bound, `malloc_trim` it.

    Evicted prefix-store entries leave holes in the heap that later, larger entries do not fit, so a 10k
    BabyAI collect gained ~750 MiB of free heap (docs/search.md, Memory). Fixing the mmap threshold at 1 MiB
    keeps them out of the heap but cost 23% of the collect's speed (every large transient tensor becomes an
    mmap/munmap pair); trimming now and then kept RSS flat at the same speed (docs/search.md). The free
    heap counts free bytes whether or not their pages are still resident, so once past the bound it trims
    at every look; that cost is in the measured speed. `max_free_mib` 0 turns it off; without glibc
    2.33+ it never trims (the free heap reads NaN)."""

    def __init__(self, max_free_mib: int = HEAP_TRIM_MIB, every: int = 16) -> None:
        self.max_free_mib = max_free_mib
        self.every = max(1, every)
        self.ticks = 0
        self.trims = 0

    def tick(self) -> bool:
        """Count one unit of work; True when this call trimmed."""
        self.ticks += 1
        if self.max_free_mib <= 0 or self.ticks % self.every:
            return False
        if not heap_free_mib() > self.max_free_mib:  # NaN (no mallinfo2) never trims
            return False
        malloc_trim()
        self.trims += 1
        return True


def release_memory() -> None:
    """Free what a finished stage left cached: the decoder's pooled key/value buffers, cyclic garbage,
    and glibc's free heap pages. Call between stages (the pipeline does), never inside a generation loop."""
    from agentprm.policy.fastgen import release_buffers

    release_buffers()
    gc.collect()
    malloc_trim()
