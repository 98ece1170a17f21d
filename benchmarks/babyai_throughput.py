"""BabyAI figures that `env_throughput.py` does not give: bare minigrid primitive steps/s (the floor
under the text wrapper) and the expert's speed and success on the first N train ids.

    PYTHONPATH=src python benchmarks/babyai_throughput.py [--seconds 5] [--demos 80]

The wrapper's own macro steps/s: `PYTHONPATH=src python benchmarks/env_throughput.py`.
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from agentprm.envs.babyai import BabyAIEnv, _quiet, make_level  # noqa: E402
from agentprm.envs.babyai_expert import expert_trajectory  # noqa: E402


def primitive_steps_per_s(seconds: float) -> float:
    rng = random.Random(0)
    env = make_level("BabyAI-GoToLocalS8N7-v0")
    steps, start = 0, time.perf_counter()
    with _quiet():  # minigrid's "Sampling rejected" prints
        env.reset(seed=0)
        while time.perf_counter() - start < seconds:
            _, _, term, trunc, _ = env.step(rng.randrange(6))
            steps += 1
            if term or trunc:
                env.reset(seed=steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--demos", type=int, default=80, help="expert episodes on train ids 0..N-1 (0 to skip)")
    args = ap.parse_args()
    print(f"minigrid primitive steps/s (GoToLocalS8N7, no text): {primitive_steps_per_s(args.seconds):,.0f}")
    if args.demos:
        env, ok = BabyAIEnv(), 0
        start = time.perf_counter()
        for task_id in env.task_ids("train", args.demos):
            ok += expert_trajectory(env, task_id, 0).success
        elapsed = time.perf_counter() - start
        print(
            f"expert: {ok}/{args.demos} solved, {elapsed / args.demos:.2f} s/episode ({args.demos / elapsed:.2f} demos/s)"
        )


if __name__ == "__main__":
    main()
