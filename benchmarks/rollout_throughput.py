"""Rollout throughput: batched (many envs in lockstep) against one episode at a time, same policy and tasks.

    PYTHONPATH=src python benchmarks/rollout_throughput.py --policy runs/x/policy --env textcraft --episodes 64

Without --policy it builds a toy tiny policy on the scripted env (so it runs anywhere). Rows:
`fast` (preallocated KV cache, finished rows dropped, earlier rounds' keys/values reused: the default),
`fast-noreuse` (the same, re-encoding the whole conversation every round), `hf` (HF `generate`, dynamic cache),
`hf-static` (HF `generate`, static cache), each batched; then `fast` one episode at a time. Every
mode runs the same tasks at T = 1 with the same per-episode seeds. The last line is the ratio
batched-fast / sequential-fast in episodes/s. With one thread (--threads 1) the times are the process's
CPU time, which equals wall time on an idle machine and, unlike wall time, does not count the time a
shared (or `nice`d) process waits for a core; the wall-time ratio is printed above it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from agentprm.policy.hf import HFPolicy
from agentprm.rollout import RolloutConfig, new_episode, run_episodes
from agentprm.rollout.jobs import episode_seed


def measure(policy, make_env, tasks, cfg) -> dict:
    eps = [new_episode(make_env(), u, traj_id=f"{u}#{i}", seed=episode_seed(0, u, i)) for i, u in enumerate(tasks)]
    t0, c0 = time.perf_counter(), time.process_time()
    trajs = [ep.traj for ep in run_episodes(policy, eps, cfg)]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # One thread: CPU time is the time the run computed (wall time adds waits for a shared core).
    dt = cpu if torch.get_num_threads() == 1 else wall
    trajs.sort(key=lambda t: t.id)
    gen = sum(t.compute.policy_generated_tokens for t in trajs)
    return {
        "sec": dt,
        "wall": wall,
        "cpu": cpu,
        "episodes/s": len(trajs) / dt,
        "gen tok/s": gen / dt,
        "success": sum(t.success for t in trajs) / len(trajs),
        "turns": sum(t.num_steps for t in trajs) / len(trajs),
        "gen": gen,
        "context": sum(t.compute.policy_prompt_tokens for t in trajs) / max(1, sum(t.num_steps for t in trajs)),
        "outputs": {t.id: [s.output for s in t.steps] for t in trajs},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--policy", type=Path, default=None, help="policy dir (default: a toy tiny policy on the scripted env)"
    )
    ap.add_argument("--env", default="textcraft")
    ap.add_argument("--split", default="train")
    ap.add_argument("--episodes", type=int, default=64, help="episodes per mode (= the batch for batched modes)")
    ap.add_argument(
        "--sequential-episodes",
        type=int,
        default=None,
        help="episodes for the one-at-a-time row (default: all; fewer makes the ratio compare different tasks)",
    )
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--max-rounds", type=int, default=None)
    ap.add_argument("--modes", default="fast,fast-noreuse,hf,hf-static")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128, help="toy policy width (default: the tiny default's)")
    ap.add_argument("--layers", type=int, default=4, help="toy policy layers (default: the tiny default's)")
    ap.add_argument("--train-steps", type=int, default=100, help="SFT steps of the toy policy on scripted demos")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.policy is None:
        from agentprm.testing import ScriptedEnv
        from agentprm.testing.policies import tiny_policy_dir

        tmp = Path(tempfile.mkdtemp())
        policy_dir = tiny_policy_dir(
            tmp / "policy",
            train_steps=args.train_steps,
            hidden=args.hidden,
            layers=args.layers,
            intermediate=4 * args.hidden,  # the tiny default's MLP ratio (TinyPolicyConfig: 128 -> 512)
        )

        def make_env():
            return ScriptedEnv(max_rounds=6, n_train=args.episodes)

        env_name = "scripted"
    else:
        from agentprm.envs import get_spec

        policy_dir, spec, env_name = args.policy, get_spec(args.env), args.env
        make_env = spec.make
    tasks = make_env().task_ids(args.split, args.episodes)
    policy = HFPolicy.load(policy_dir, batch_size=args.episodes)
    cfg = RolloutConfig(
        temperature=1.0, max_new_tokens=args.max_new_tokens, max_rounds=args.max_rounds, batch_size=args.episodes
    )
    print(
        f"env {env_name}, policy {policy_dir}, {args.episodes} episodes, T=1, threads {args.threads}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    clock = "CPU s" if args.threads == 1 else "wall s"
    print(f"{'mode':<22}{'episodes/s':>12}{'gen tok/s':>12}{clock:>9}{'turns':>8}{'success':>9}")
    rows = {}
    store = policy.prefix_store
    for mode in args.modes.split(","):
        policy.mode = "fast" if mode.startswith("fast") else mode
        policy.prefix_store = store if mode == "fast" else None
        store.clear()  # every mode starts cold
        rows[mode] = r = measure(policy, make_env, tasks, cfg)
        print(
            f"{mode + ' batched':<22}{r['episodes/s']:>12.2f}{r['gen tok/s']:>12.0f}{r['sec']:>9.1f}{r['turns']:>8.1f}{r['success']:>9.1%}",
            flush=True,
        )
    policy.mode, policy.prefix_store = "fast", store
    store.clear()
    seq_cfg = RolloutConfig(
        temperature=1.0, max_new_tokens=args.max_new_tokens, max_rounds=args.max_rounds, batch_size=1
    )
    seq = measure(policy, make_env, tasks[: args.sequential_episodes], seq_cfg)
    print(
        f"{'fast one-at-a-time':<22}{seq['episodes/s']:>12.2f}{seq['gen tok/s']:>12.0f}{seq['sec']:>9.1f}{seq['turns']:>8.1f}{seq['success']:>9.1%}"
    )
    if "fast" in rows:  # seeds are per episode: batched and one-at-a-time must sample the same turns
        same = all(rows["fast"]["outputs"].get(k) == v for k, v in seq["outputs"].items())
        print(f"same trajectories batched and one at a time: {same}")
    if "fast" in rows:
        for mode in rows:
            if mode != "fast":
                print(f"fast vs {mode} (both batched): {rows['fast']['episodes/s'] / rows[mode]['episodes/s']:.1f}x")
        from agentprm.flops import limit_line, matmul_flops_per_s

        r = rows["fast"]
        print(
            limit_line(
                "fast batched, generated tokens",
                policy.model.config,
                int(r["gen"]),
                r["context"],
                r["sec"],
                lm_head=True,
                machine=matmul_flops_per_s(),
            )
        )
        f = rows["fast"]
        print(
            f"wall-time ratio: {seq['wall'] / f['wall'] * len(f['outputs']) / len(seq['outputs']):.1f}x, "
            f"CPU-time ratio: {seq['cpu'] / f['cpu'] * len(f['outputs']) / len(seq['outputs']):.1f}x"
        )
        print(f"speed-up: {f['episodes/s'] / seq['episodes/s']:.1f}x")


if __name__ == "__main__":
    main()
