"""Env steps per second in-process vs through our AgentGym-protocol server, 1 client and N concurrent clients.

    PYTHONPATH=src python benchmarks/env_http_throughput.py [--env textcraft] [--seconds 3] [--clients 8]

For each env (default: every registered env that builds in-process and has `sample_action`), action
lists are drawn before timing by playing each test task in-process with `sample_action` (up to the
env's round limit, stopping at done), so every path does exactly the same work. Then the same reset +
step loops run (a) in-process, (b) through `agentprm serve-env` in a subprocess on 127.0.0.1 with one
`AgentGymEnv`, (c) with N `AgentGymEnv`s in N threads of one process (one connection pool, as batched
rollouts use it). Resets count as steps. Prints steps/s per path and the HTTP/in-process ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def action_lists(env, task_ids: list[str], seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    out = {}
    for task_id in task_ids:
        env.reset(task_id)
        actions = []
        for _ in range(env.max_rounds):
            action = env.sample_action(rng)
            actions.append(action)
            if env.step(action).done:
                break
        out[task_id] = actions
    return out


def loop(env, plan: dict[str, list[str]], seconds: float, offset: int = 0) -> int:
    """Steps (incl. resets) done in `seconds` of reset+step loops over the planned tasks."""
    tasks = list(plan)
    steps = episode = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        task_id = tasks[(offset + episode) % len(tasks)]
        env.reset(task_id)
        steps += 1
        for action in plan[task_id]:
            env.step(action)
            steps += 1
        episode += 1
    return steps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(name: str, port: int, lifetime: float) -> subprocess.Popen:
    import httpx

    cmd = [
        sys.executable,
        "-c",
        "from agentprm.cli import main; main()",
        "serve-env",
        "--env",
        name,
        "--port",
        str(port),
        "--lifetime",
        str(lifetime),
    ]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.DEVNULL)
    for _ in range(600):  # bounded wait for start-up
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError(f"serve-env --env {name} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", help="env name (repeatable; default: all that qualify)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per path")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=20, help="test tasks to cycle through")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sys.path.insert(0, str(SRC))
    from agentprm.envs import REGISTRY
    from agentprm.envs.agentgym import AgentGymEnv

    for name in args.env or sorted(REGISTRY):
        try:
            env = REGISTRY[name].make()
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"{name}: skipped, cannot build in-process ({type(e).__name__}: {e})")
            continue
        if not hasattr(env, "sample_action"):
            print(f"{name}: skipped, no sample_action")
            continue
        plan = action_lists(env, env.task_ids("test", args.tasks), args.seed)
        local = loop(env, plan, args.seconds) / args.seconds

        port = free_port()
        proc = start_server(name, port, lifetime=4 * args.seconds + 60)
        try:
            url = f"http://127.0.0.1:{port}"
            dialect = "env_idx" if name == "webshop" else "id"
            remote = AgentGymEnv(f"agentgym:{name}+{dialect}@{url}")
            one = loop(remote, plan, args.seconds) / args.seconds
            remote.close()
            counts = [0] * args.clients

            def client(i: int, spec: str, plan: dict[str, list[str]], counts: list[int]) -> None:
                e = AgentGymEnv(spec)
                counts[i] = loop(e, plan, args.seconds, offset=i)
                e.close()

            spec = f"agentgym:{name}+{dialect}@{url}"
            threads = [threading.Thread(target=client, args=(i, spec, plan, counts)) for i in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            many = sum(counts) / args.seconds
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        print(f"{name}: in-process {local:,.0f} steps/s")
        print(f"{name}: http 1 client {one:,.0f} steps/s ({one / local:.3f}x in-process)")
        print(
            f"{name}: http {args.clients} clients {many:,.0f} steps/s ({many / local:.3f}x in-process, {many / one:.2f}x one client)"
        )


if __name__ == "__main__":
    main()
