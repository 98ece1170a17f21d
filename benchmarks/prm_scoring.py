"""One-pass PRM scoring (every step of a conversation in one forward pass) vs one forward pass per step.

Same trajectories, same model, same batching (length-sorted batches under a token budget); both paths
go through `PRMScorer.score`. Per-step scoring feeds the prefix (s_t, a_t) of each step as its own
conversation, which is what a PRM without causal step reading would have to do.

    PYTHONPATH=src python benchmarks/prm_scoring.py                      # tiny model, scripted data
    PYTHONPATH=src python benchmarks/prm_scoring.py --prm DIR --trajectories FILE

Last line: `speed-up: N.Nx` (per-step wall time / one-pass wall time).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.prm_helpers for the default setup

from agentprm.conversation import trajectory_messages  # noqa: E402
from agentprm.prm.model import PRMMeta, PRMScorer, ValueHeadPRM  # noqa: E402
from agentprm.trajectory import read_trajectories  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prm", type=Path, help="PRM dir (default: a tiny h128 L4 Llama PRM built here)")
    ap.add_argument("--trajectories", type=Path, help="trajectories JSONL (default: 64 scripted, up to 20 steps)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.trajectories:
        trajs = read_trajectories(args.trajectories)[: args.n]
    else:
        from tests.prm_helpers import scripted_trajectory

        rng = random.Random(0)
        trajs = [
            scripted_trajectory(f"line_{1 + i % 4}_{i}", rng.choice([0.2, 0.5, 0.9]), rng, max_rounds=20, i=i)
            for i in range(args.n)
        ]
    with tempfile.TemporaryDirectory() as tmp:
        prm_dir = args.prm
        if prm_dir is None:
            from tests.prm_helpers import tiny_backbone_dir

            tiny_backbone_dir(Path(tmp) / "bb", hidden=128, layers=4)
            model = ValueHeadPRM.from_backbone(Path(tmp) / "bb")
            torch.nn.init.normal_(model.head.weight, std=0.1)
            from transformers import AutoTokenizer

            model.save(Path(tmp) / "prm", AutoTokenizer.from_pretrained(str(Path(tmp) / "bb")), PRMMeta())
            prm_dir = Path(tmp) / "prm"
        scorer = PRMScorer.load(prm_dir, device=args.device if args.device != "cpu" else None)

        one_pass = [trajectory_messages(t) for t in trajs]
        per_step = [trajectory_messages(t, k) for t in trajs for k in range(t.num_steps)]
        steps = sum(t.num_steps for t in trajs)

        def timed(convs):
            best, res = float("inf"), None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                res = scorer.score(convs)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            return best, res

        scorer.score(one_pass[:4])  # warm-up
        t_one, r_one = timed(one_pass)
        t_per, r_per = timed(per_step)
        # the two must agree: the last score of each prefix is that step's one-pass score
        flat_one = [s for r in r_one for s in r.scores]
        flat_per = [r.scores[-1] for r in r_per]
        max_diff = max(abs(a - b) for a, b in zip(flat_one, flat_per))
        tok_one, tok_per = sum(r.tokens for r in r_one), sum(r.tokens for r in r_per)
        print(
            f"trajectories: {len(trajs)}, steps: {steps}, mean steps/trajectory: {steps / len(trajs):.1f}, "
            f"device: {args.device}, threads: {args.threads}"
        )
        print(f"one-pass : {tok_one:>9} tokens  {t_one:8.3f} s")
        print(f"per-step : {tok_per:>9} tokens  {t_per:8.3f} s   (tokens x{tok_per / tok_one:.1f})")
        print(f"max |score difference|: {max_diff:.2e}")
        print(f"speed-up: {t_per / t_one:.1f}x")


if __name__ == "__main__":
    main()
