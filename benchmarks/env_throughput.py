"""Env steps per second (reset + step loop) for every env in the registry that builds in-process.

    PYTHONPATH=src python benchmarks/env_throughput.py [--seconds 3] [--max-steps 20]

Each episode resets to the next test task id and takes up to --max-steps actions (the env's round
limit by default), stopping early when done. Actions come from `env.sample_action(rng)` (a random mix
of valid and invalid commands) when the env has it, else from replaying the registered expert's
actions. Resets count as steps. One line per env: `<env>: N steps/s (...)`; envs that fail to build
are skipped with the reason.
"""

from __future__ import annotations

import argparse
import random
import time


def measure(env, task_ids, actions_for, seconds: float, max_steps: int | None) -> tuple[int, int, float]:
    """(env steps incl. resets, episodes, elapsed s) of reset+step loops over `task_ids` for `seconds`."""
    limit = max_steps or env.max_rounds
    steps = episodes = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        task_id = task_ids[episodes % len(task_ids)]
        env.reset(task_id)
        steps += 1
        for action in actions_for(task_id, limit):
            steps += 1
            if env.step(action).done:
                break
        episodes += 1
    return steps, episodes, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per env")
    parser.add_argument("--max-steps", type=int, default=None, help="actions per episode (default: env.max_rounds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--replay-tasks", type=int, default=20, help="test tasks to replay for envs without sample_action"
    )
    args = parser.parse_args()

    from agentprm.envs import REGISTRY

    for name, spec in sorted(REGISTRY.items()):
        try:
            env = spec.make()
        except Exception as e:  # noqa: BLE001 - a missing optional dependency or data dir: report and go on
            print(f"{name}: skipped, cannot build in-process ({type(e).__name__}: {e})")
            continue
        rng = random.Random(args.seed)
        task_ids = env.task_ids("test")
        if hasattr(env, "sample_action"):
            source = "sample_action"

            def actions_for(task_id, limit, env=env, rng=rng):
                for _ in range(limit):
                    yield env.sample_action(rng)
        elif spec.expert is not None:
            source = "expert replay"
            expert = spec.make_expert()
            task_ids = task_ids[: args.replay_tasks]
            # planned before timing, so the figure is the env's speed, not the expert's
            replays = {t: [s.action for s in expert(env, t, args.seed).steps] for t in task_ids}

            def actions_for(task_id, limit, replays=replays):
                return replays[task_id][:limit]
        else:
            print(f"{name}: skipped, no sample_action and no expert to replay")
            continue
        steps, episodes, elapsed = measure(env, task_ids, actions_for, args.seconds, args.max_steps)
        print(
            f"{name}: {steps / elapsed:,.0f} steps/s ({steps} steps incl. resets, {episodes} episodes, {elapsed:.1f} s, {source})"
        )
        env.close()


if __name__ == "__main__":
    main()
