"""Load on an env server: C concurrent clients each creating, resetting, stepping and closing sessions
(raw HTTP in the server's dialect), with per-request latency and the server's memory and threads sampled.
Used by `benchmarks/serve_env_load.py` and, at a small size, by tests/test_serve_load.py."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agentprm.envs.agentgym.dialects import SERVERS


def proc_status(pid: int) -> tuple[int, int]:
    """(resident KiB, threads) of process `pid` (Linux /proc)."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


@dataclass
class LoadResult:
    sessions: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # (sessions done, RSS KiB, threads)
    seconds: float = 0.0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    def summary(self) -> str:
        rss = [s[1] for s in self.samples]
        thr = [s[2] for s in self.samples]
        return (
            f"{self.sessions} sessions, {self.requests} requests in {self.seconds:.1f}s "
            f"({self.requests / max(self.seconds, 1e-9):.0f} req/s); latency p50 {self.pct(0.5):.1f} ms, "
            f"p99 {self.pct(0.99):.1f} ms, mean {statistics.fmean(self.latencies_ms) if self.latencies_ms else 0:.1f} ms; "
            f"RSS KiB start/end/max {rss[0] if rss else 0}/{rss[-1] if rss else 0}/{max(rss, default=0)}; "
            f"threads start/end/max {thr[0] if thr else 0}/{thr[-1] if thr else 0}/{max(thr, default=0)}; "
            f"errors {len(self.errors)}"
        )


def drive(
    url: str,
    protocol: str,
    *,
    clients: int,
    sessions: int,
    steps: int,
    server_pid: int | None,
    samples: int = 10,
    on_sample: Callable[[int, int, int], None] | None = None,
) -> LoadResult:
    """`sessions` sessions spread over `clients` threads; each session: create, reset, `steps` steps, close.

    The server's (RSS, threads) is sampled before the first session and every `sessions // samples`
    sessions; `on_sample(done, rss_kib, threads)` is called with each (progress lines)."""
    d = SERVERS[protocol]
    res = LoadResult()
    if server_pid is not None:
        res.samples.append((0, *proc_status(server_pid)))
        if on_sample:
            on_sample(*res.samples[-1])
    lock = threading.Lock()
    counter = {"next": 0, "done": 0}
    every = max(1, sessions // samples)

    def timed(c: httpx.Client, method: str, path: str, **kw):
        t = time.perf_counter()
        r = c.request(method, path, **kw)
        ms = (time.perf_counter() - t) * 1000
        with lock:
            res.latencies_ms.append(ms)
            res.requests += 1
        if r.status_code != 200:
            raise RuntimeError(f"{method} {path}: HTTP {r.status_code}: {r.text[:100]}")
        body = r.json()
        if isinstance(body, dict) and "error" in body:
            raise RuntimeError(f"{method} {path}: {body['error']}")
        return body

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as c:
            while True:
                with lock:
                    i = counter["next"]
                    counter["next"] += 1
                if i >= sessions:
                    return
                try:
                    send, body = d.create_request()
                    sid = d.parse_create(timed(c, "POST", "/create", **({"json": body} if send else {})), "create")
                    timed(c, "POST", "/reset", json=d.reset_request(sid, i % 8))
                    for _ in range(steps):
                        timed(c, "POST", "/step", json=d.step_request(sid, "z"))  # a wrong word: never ends the episode
                    timed(c, "POST", "/close", json=d.close_request(sid))
                except Exception as e:  # noqa: BLE001 - counted and reported
                    with lock:
                        res.errors.append(str(e)[:200])
                with lock:
                    counter["done"] += 1
                    done = counter["done"]
                if server_pid is not None and done % every == 0:
                    rss, thr = proc_status(server_pid)
                    with lock:
                        res.samples.append((done, rss, thr))
                    if on_sample:
                        on_sample(done, rss, thr)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res.seconds = time.monotonic() - t0
    res.sessions = counter["done"]
    if server_pid is not None:  # the end state, after the last session closed
        res.samples.append((res.sessions, *proc_status(server_pid)))
    res.samples.sort()
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_env_process(protocol: str, *, max_envs: int = 1024, port: int | None = None) -> Iterator[tuple[str, int]]:
    """`agentprm serve-env` (the CLI, in a subprocess) serving the test-only scripted env in `protocol`'s
    dialect on 127.0.0.1; yields (url, pid) once it answers, and terminates it on exit."""
    port = port or free_port()
    code = (
        "from agentprm.envs import register, EnvSpec;"
        "register(EnvSpec(name='scriptline', factory='agentprm.testing.fake_agentgym:NumberedScriptedEnv', description='t'));"
        "from agentprm.cli import main; main()"
    )
    cmd = [sys.executable, "-c", code, "serve-env", "--env", "scriptline", "--protocol", protocol]
    cmd += ["--port", str(port), "--max-envs", str(max_envs), "--lifetime", "7200"]
    src = str(Path(__file__).resolve().parents[2])  # this checkout's src/, whatever PYTHONPATH says
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    log = tempfile.TemporaryFile()  # not a pipe: a chatty server would block on a full one
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"serve-env exited with {proc.returncode}: {log.read().decode()[-500:]}")
            try:
                httpx.get(url + "/", timeout=0.5, trust_env=False)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("serve-env did not answer within 120 s") from None
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def server_stats(url: str) -> dict[str, int]:
    """serve-env's session counters (GET /stats): open, created, closed, evicted."""
    return httpx.get(url + "/stats", timeout=10, trust_env=False).json()
