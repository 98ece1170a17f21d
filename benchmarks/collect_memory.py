"""Resident memory of a long collect: many short trajectories streamed to disk.

`rollout_tasks` writes each trajectory as it ends (nothing accumulates in memory); the policy's prefix
store (earlier rounds' keys/values) is bounded by bytes. This prints the resident set size (RSS) after
warm-up and every tenth of the run, the store's bytes against its bound, and the peak RSS. Flat after
warm-up is the goal; a slow climb that stops is allocator caching, a steady climb a leak.

    PYTHONPATH=src python benchmarks/collect_memory.py [--episodes 2000] [--store-mb 64]

Last line: `peak RSS: N MB`.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from agentprm.policy.hf import HFPolicy
from agentprm.rollout import RolloutConfig
from agentprm.rollout.jobs import rollout_tasks
from agentprm.testing import ScriptedEnv
from agentprm.testing.policies import tiny_policy_dir


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--store-mb", type=int, default=64, help="prefix store bound (MB)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        pdir = tiny_policy_dir(Path(tmp) / "policy", hidden=128, layers=4)
        policy = HFPolicy.load(pdir, batch_size=args.batch, kv_store_bytes=args.store_mb << 20)
        env = ScriptedEnv(max_rounds=args.rounds, n_train=args.episodes)
        tasks = env.task_ids("train")
        cfg = RolloutConfig(temperature=1.0, max_new_tokens=args.max_new_tokens, batch_size=args.batch)
        out = Path(tmp) / "trajectories.jsonl"
        store = policy.prefix_store
        marks = {max(1, args.episodes * k // 10): k for k in range(1, 11)}
        rows = []

        def on_done(traj, summary) -> None:
            k = marks.get(summary.written)
            if k is not None:
                rows.append((summary.written, rss_mb(), store.bytes / 2**20, time.perf_counter() - t0))
                print(
                    f"{summary.written:>7} trajectories  RSS {rows[-1][1]:7.1f} MB  prefix store "
                    f"{rows[-1][2]:6.1f} / {store.max_bytes / 2**20:.0f} MB ({len(store)} entries)  {rows[-1][3]:6.1f} s",
                    flush=True,
                )

        print(
            f"collect {args.episodes} scripted episodes (<= {args.rounds} turns, {args.max_new_tokens} new tokens), "
            f"batch {args.batch}, tiny policy h128 L4, {args.threads} thread(s); RSS at start {rss_mb():.1f} MB"
        )
        t0 = time.perf_counter()
        rollout_tasks(
            policy,
            lambda: ScriptedEnv(max_rounds=args.rounds, n_train=args.episodes),
            tasks,
            out,
            cfg=cfg,
            on_done=on_done,
        )
        size = out.stat().st_size / 2**20
    warm = rows[0][1]
    print(
        f"trajectories on disk: {size:.1f} MB; RSS after the first tenth {warm:.1f} MB, at the end {rows[-1][1]:.1f} MB "
        f"({rows[-1][1] - warm:+.1f} MB)"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
