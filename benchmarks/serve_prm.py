"""Load test of `agentprm serve-prm`: 1, 8 and 32 concurrent clients, each scoring one conversation a
request (as RL workers or search drivers scoring finished episodes), against in-process scoring of the
same conversations (one `score` call per conversation, and all of them in one call).

The server runs as its own process (`agentprm serve-prm`, one torch thread, as the in-process scorer);
clients are threads with their own HTTP connection. Every served score is checked against in-process
scoring (max |difference| printed).

    PYTHONPATH=src python benchmarks/serve_prm.py                  # tiny h128 L4 PRM, scripted data, ~1 min
    PYTHONPATH=src python benchmarks/serve_prm.py --prm DIR --trajectories FILE

Last line: `speed-up: N.Nx` = throughput at the most clients / throughput at 1 client (the batching gain).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.prm_helpers for the default setup

from agentprm.conversation import trajectory_messages  # noqa: E402
from agentprm.prm.model import PRMMeta, PRMScorer, ValueHeadPRM, encode_for_scoring  # noqa: E402
from agentprm.trajectory import read_trajectories  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def load(url: str, convs: list, clients: int, requests: int) -> tuple[float, list[float], dict[int, list[float]]]:
    """(wall seconds, per-request latencies, scores by conversation index) for `requests` one-conversation
    requests spread over `clients` threads."""
    todo = list(range(requests))
    lock = threading.Lock()
    lat: list[float] = []
    got: dict[int, list[float]] = {}
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            barrier.wait()
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop()
                t0 = time.perf_counter()
                r = http.post("/score", json={"conversations": [convs[i % len(convs)]]})
                r.raise_for_status()
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    got[i % len(convs)] = r.json()["scores"][0]

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, lat, got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prm", type=Path, help="PRM dir (default: a tiny h128 L4 Llama PRM built here)")
    ap.add_argument("--trajectories", type=Path, help="trajectories JSONL (default: 64 scripted, up to 12 steps)")
    ap.add_argument("--n", type=int, default=64, help="distinct conversations")
    ap.add_argument("--requests", type=int, default=128, help="requests per concurrency level (1 client: half)")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-tokens", type=int, default=4096, help="forward-pass budget (server and in-process)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    if args.trajectories:
        trajs = read_trajectories(args.trajectories)[: args.n]
    else:
        from tests.prm_helpers import scripted_trajectory

        rng = random.Random(0)
        trajs = [
            scripted_trajectory(f"line_{1 + i % 4}_{i}", rng.choice([0.2, 0.5, 0.9]), rng, max_rounds=12, i=i)
            for i in range(args.n)
        ]
    convs = [trajectory_messages(t) for t in trajs]
    with tempfile.TemporaryDirectory() as tmp:
        prm_dir = args.prm
        if prm_dir is None:
            from transformers import AutoTokenizer

            from tests.prm_helpers import tiny_backbone_dir

            tiny_backbone_dir(Path(tmp) / "bb", hidden=128, layers=4)
            model = ValueHeadPRM.from_backbone(Path(tmp) / "bb")
            torch.nn.init.normal_(model.head.weight, std=0.1)
            model.save(Path(tmp) / "prm", AutoTokenizer.from_pretrained(str(Path(tmp) / "bb")), PRMMeta())
            prm_dir = Path(tmp) / "prm"
        scorer = PRMScorer.load(
            prm_dir, device=args.device if args.device != "cpu" else None, batch_tokens=args.batch_tokens
        )

        # in-process: one call per conversation (what a single client does), and all in one call (the ceiling)
        scorer.score(convs[:4])
        t0 = time.perf_counter()
        want = [scorer.score([c])[0].scores for c in convs]
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        scorer.score(convs)
        t_all = time.perf_counter() - t0
        tokens = sum(len(encode_for_scoring(scorer.tokenizer, c).input_ids) for c in convs) / len(convs)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable,
            "-c",
            "from agentprm.cli import main; main()",
            "serve-prm",
            "--rm",
            str(prm_dir),
            "--port",
            str(port),
            "--threads",
            "1",
            "--device",
            args.device,
            "--max-wait-ms",
            str(args.max_wait_ms),
            "--batch-tokens",
            str(args.batch_tokens),
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("serve-prm did not start")
                time.sleep(0.2)
            load(url, convs, 4, 8)  # warm-up
            print(
                f"conversations: {len(convs)} (mean {tokens:.0f} tokens), device: {args.device}, torch threads: 1 (server and in-process), "
                f"batch tokens: {args.batch_tokens}, load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
            print(
                f"in-process, one call per conversation: {len(convs) / t_single:8.1f} conv/s   ({t_single / len(convs) * 1000:.1f} ms each)"
            )
            print(f"in-process, all in one call          : {len(convs) / t_all:8.1f} conv/s")
            print(f"{'clients':>7} {'requests':>8} {'conv/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'batches':>8}")
            rates = {}
            max_diff = 0.0
            for c in [int(x) for x in args.clients.split(",")]:
                n_req = args.requests // 2 if c == 1 else args.requests
                b0 = httpx.get(f"{url}/health").json()["batches"]
                wall, lat, got = load(url, convs, c, n_req)
                batches = httpx.get(f"{url}/health").json()["batches"] - b0
                for i, s in got.items():
                    max_diff = max([max_diff, *(abs(a - b) for a, b in zip(s, want[i], strict=True))])
                rates[c] = n_req / wall
                print(
                    f"{c:>7} {n_req:>8} {rates[c]:>8.1f} {statistics.median(lat) * 1000:>8.1f} {percentile(lat, 99) * 1000:>8.1f} {batches:>8}"
                )
            print(f"max |served - in-process score|: {max_diff:.2e}")
            most = max(rates)
            print(
                f"served at {most} clients vs in-process one call per conversation: {rates[most] / (len(convs) / t_single):.1f}x"
            )
            print(f"speed-up: {rates[most] / rates[min(rates)]:.1f}x")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
