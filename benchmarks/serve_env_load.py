"""`agentprm serve-env` under load: C concurrent clients creating, resetting, stepping and closing S sessions.

    PYTHONPATH=src python benchmarks/serve_env_load.py [--clients 64] [--sessions 10000] [--steps 3] [--protocol babyai]

The server runs as `agentprm serve-env` in a subprocess (a test-only scripted env, so the figures are the
server's own cost); its resident memory and threads are sampled from /proc as sessions complete.
Prints throughput, latency p50/p99, RSS and threads first/last/max, and failed requests.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from agentprm.testing.load import drive  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--protocol", default="babyai", choices=["textcraft", "babyai", "webshop"])
    args = ap.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    code = (
        "from agentprm.envs import register, EnvSpec;"
        "register(EnvSpec(name='scriptline', factory='agentprm.testing.fake_agentgym:NumberedScriptedEnv', description='t'));"
        "from agentprm.cli import main; main()"
    )
    cmd = [
        sys.executable,
        "-c",
        code,
        "serve-env",
        "--env",
        "scriptline",
        "--protocol",
        args.protocol,
        "--port",
        str(port),
        "--max-envs",
        "256",
        "--lifetime",
        "3600",
    ]
    proc = subprocess.Popen(
        cmd, env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(url + "/", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        res = drive(
            url,
            args.protocol,
            clients=args.clients,
            sessions=args.sessions,
            steps=args.steps,
            server_pid=proc.pid,
            samples=20,
        )
        print(f"{args.clients} clients, {args.protocol} protocol: {res.summary()}")
        for done, rss, thr in res.samples:
            print(f"  after {done:6d} sessions: RSS {rss} KiB, {thr} threads")
        if res.errors:
            print("first errors:", res.errors[:3])
        return 1 if res.errors else 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
