"""Batched beam search against one task at a time: same tasks, same models, same settings.

The policy is a toy tiny policy (the embedded default's architecture, `agentprm.testing.policies.
tiny_policy_dir`, untrained unless --train-steps) through `HFPolicy`, and the PRM a random tiny value
head of the same shape through `PRMScorer` (incremental scoring on). Random weights make most turns
run to the token cap and episodes to the round limit, so both sides do the same work and the ratio
measures batching alone.

    PYTHONPATH=src python benchmarks/search_throughput.py [--tasks 16] [--beam 2x2] [--hidden 128 --layers 4]

Last line: `speed-up: N.Nx` (tasks/s batched over tasks/s one task at a time). With one thread the
ratio is taken on the process's CPU time, which equals wall time on an idle machine and, unlike wall
time, does not count the time a shared (or `nice`d) process waits for a core; both are printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from agentprm.policy.hf import HFPolicy
from agentprm.prm.model import PRMMeta, PRMScorer, ValueHeadPRM
from agentprm.search import BeamConfig, beam_search
from agentprm.testing import ScriptedEnv
from agentprm.testing.policies import tiny_policy_dir


def build(tmp: Path, hidden: int, layers: int, train_steps: int) -> tuple[HFPolicy, PRMScorer]:
    # MLP 4 x hidden: the tiny default's ratio (TinyPolicyConfig: hidden 128, MLP 512)
    pdir = tiny_policy_dir(
        tmp / "policy", hidden=hidden, layers=layers, intermediate=4 * hidden, train_steps=train_steps
    )
    policy = HFPolicy.load(pdir, batch_size=256)
    prm = ValueHeadPRM.from_backbone(pdir)
    torch.manual_seed(1)
    torch.nn.init.normal_(prm.head.weight, std=0.1)
    prm.save(tmp / "prm", policy.tokenizer, PRMMeta())
    return policy, PRMScorer.load(tmp / "prm", attn=policy.model.config._attn_implementation)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--beam", default="2x2")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--train-steps", type=int, default=0, help="SFT steps on scripted demos (0: random policy)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        policy, rm = build(Path(tmp), args.hidden, args.layers, args.train_steps)

    def make_env():
        return ScriptedEnv(max_rounds=args.rounds, n_test=args.tasks)

    tasks = make_env().task_ids("test")
    n, m = (int(x) for x in args.beam.split("x"))
    cfg = BeamConfig(beam_width=n, expansions=m, max_new_tokens=args.max_new_tokens, temperature=1.0, seed=0)

    def run(task_lists):
        policy.prefix_store.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        res = [r for ts in task_lists for r in beam_search(policy, rm, make_env, ts, cfg)]
        return res, time.perf_counter() - t0, time.process_time() - c0

    run([tasks[:1]])  # warm-up
    batched, wall_batched, cpu_batched = run([tasks])
    single, wall_single, cpu_single = run([[t] for t in tasks])
    # One thread: CPU time is the time the run computed (wall time adds waits for a shared core).
    t_batched, t_single = (cpu_batched, cpu_single) if args.threads == 1 else (wall_batched, wall_single)
    same = [[s.output for s in r.trajectory.steps] for r in batched] == [
        [s.output for s in r.trajectory.steps] for r in single
    ]
    gen_b = sum(r.compute.policy_generated_tokens for r in batched)
    prm_b = sum(r.compute.prm_tokens for r in batched)
    print(
        f"tasks {len(tasks)}, beam {args.beam}, {args.rounds} rounds, {args.max_new_tokens} new tokens a turn, "
        f"policy/PRM h{args.hidden} L{args.layers} MLP {4 * args.hidden}, {args.threads} thread(s), "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    prm_s = sum(r.compute.prm_tokens for r in single)
    print(
        f"batched:        {cpu_batched:7.2f} s CPU {wall_batched:7.2f} s wall  {len(tasks) / t_batched:6.2f} tasks/s"
        f"  ({gen_b} generated, {prm_b} PRM tokens)"
    )
    print(
        f"one at a time:  {cpu_single:7.2f} s CPU {wall_single:7.2f} s wall  {len(tasks) / t_single:6.2f} tasks/s"
        f"  ({prm_s} PRM tokens; same trajectories: {same})"
    )
    print(f"wall-time ratio: {wall_single / wall_batched:.1f}x, CPU-time ratio: {cpu_single / cpu_batched:.1f}x")
    from agentprm.flops import limit_line, matmul_flops_per_s

    machine = matmul_flops_per_s()
    prompt = sum(r.compute.policy_prompt_tokens for r in batched) / max(
        1, sum(len(r.trajectory.steps) for r in batched)
    )
    # FLOPs of the whole batched run over its wall time (policy + PRM together: a lower bound on each)
    print(
        limit_line(
            "batched, generated tokens (policy)",
            policy.model.config,
            gen_b,
            prompt,
            t_batched,
            lm_head=True,
            machine=machine,
        )
    )
    print(
        limit_line(
            "batched, scored tokens (PRM)",
            rm.model.backbone.config,
            prm_b,
            prompt,
            t_batched,
            lm_head=False,
            machine=machine,
        )
    )
    print(f"speed-up: {t_single / t_batched:.1f}x")


if __name__ == "__main__":
    main()
