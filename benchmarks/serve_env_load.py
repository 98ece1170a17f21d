"""`agentprm serve-env` under load: C concurrent clients creating, resetting, stepping and closing S sessions.

    PYTHONPATH=src python benchmarks/serve_env_load.py [--clients 64] [--sessions 10000] [--steps 3] [--protocol babyai]

The server runs as `agentprm serve-env` in a subprocess (a test-only scripted env, so the figures are the
server's own cost) with room for more live sessions than clients (`--max-envs`), so nothing is evicted and a
session that close did not free stays counted. Its resident memory and threads are read from /proc before
the first session, as sessions complete (progress lines) and after the last; its `GET /stats` counts the
sessions open, created, closed and evicted at the end. Prints throughput, latency p50/p99, RSS and threads
at start/end/max, failed requests, and exits 1 on any failed request or session left open.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agentprm.testing.load import drive, serve_env_process, server_stats  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--protocol", default="babyai", choices=["textcraft", "babyai", "webshop"])
    ap.add_argument("--max-envs", type=int, default=1024, help="serve-env's live-session bound (> clients)")
    ap.add_argument("--samples", type=int, default=20, help="memory/thread samples (and progress lines)")
    args = ap.parse_args()

    def progress(done: int, rss: int, thr: int) -> None:
        print(f"  after {done:6d}/{args.sessions} sessions: RSS {rss} KiB, {thr} threads", flush=True)

    with serve_env_process(args.protocol, max_envs=args.max_envs) as (url, pid):
        res = drive(
            url,
            args.protocol,
            clients=args.clients,
            sessions=args.sessions,
            steps=args.steps,
            server_pid=pid,
            samples=args.samples,
            on_sample=progress,
        )
        stats = server_stats(url)
    print(f"{args.clients} clients, {args.protocol} protocol: {res.summary()}")
    rss0, rss1 = res.samples[0][1], res.samples[-1][1]
    print(f"server RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB ({(rss1 - rss0) / 1024:+.1f}); sessions {stats}")
    if res.errors:
        print("first errors:", res.errors[:3])
    leaked = stats["open"] != 0 or stats["closed"] != res.sessions - len(res.errors)
    return 1 if res.errors or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
