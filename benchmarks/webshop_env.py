"""WebShop env figures: oracle reward/success, goal-in-top-10 rate, env steps/s, construction time.

    PYTHONPATH=src python benchmarks/webshop_env.py [--data DIR] [--n 500] [--steps 20000]

Reports which catalogue it used. Single process; set OMP_NUM_THREADS=1 on shared machines.
"""

from __future__ import annotations

import argparse
import random
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None, help="real WebShop data dir (default: synthetic catalogue)")
    ap.add_argument("--n", type=int, default=500, help="tasks per split for the oracle")
    ap.add_argument("--steps", type=int, default=20000, help="random actions for the steps/s figure")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from agentprm.envs.webshop.env import WebShopEnv
    from agentprm.envs.webshop.expert import expert_trajectory

    env = WebShopEnv(data=args.data)
    build_s = time.perf_counter() - t0
    print(f"env: {env.describe()}")
    print(f"construction (import + catalogue + BM25 index): {build_s:.2f} s; again: ", end="")
    t0 = time.perf_counter()
    WebShopEnv(data=args.data)
    print(f"{(time.perf_counter() - t0) * 1e3:.2f} ms (cached)")

    for split in ("train", "test"):
        ids = env.task_ids(split, args.n)
        t0 = time.perf_counter()
        trajs = [expert_trajectory(env, t, 0) for t in ids]
        dt = time.perf_counter() - t0
        mean_r = sum(t.reward for t in trajs) / len(trajs)
        succ = sum(t.success for t in trajs) / len(trajs)
        found = sum(t.meta["found_goal"] for t in trajs) / len(trajs)
        steps = sum(t.num_steps for t in trajs)
        print(
            f"oracle {split}: n={len(ids)} mean reward {mean_r:.3f} success {succ:.1%} "
            f"bought the goal product {found:.1%} mean steps {steps / len(trajs):.2f} ({len(ids) / dt:.0f} episodes/s)"
        )

    ranks = []
    for g in env.catalogue.goals:
        res = env.engine.search(g.instruction_text.lower().split(" "))
        ranks.append(res.index(g.asin) if g.asin in res else None)
    n = len(ranks)
    print(
        f"goal product rank for its own instruction over all {n} goals: top-1 {sum(r == 0 for r in ranks) / n:.1%} "
        f"top-10 {sum(r is not None and r < 10 for r in ranks) / n:.1%} top-50 {sum(r is not None for r in ranks) / n:.1%}"
    )

    rng = random.Random(0)
    goals = len(env.catalogue.goals)
    env.reset("webshop_0")
    done_eps = 0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        if env.step(env.sample_action(rng)).done:
            done_eps += 1
            env.reset(f"webshop_{rng.randrange(goals)}")
    dt = time.perf_counter() - t0
    print(
        f"random actions: {args.steps / dt:,.0f} env steps/s ({done_eps} purchases; includes sample_action and resets)"
    )

    env.reset("webshop_0")
    env.step("search[" + env.goal.instruction_text + "]")
    t0 = time.perf_counter()
    for _ in range(10000):
        env.clone()
    print(f"clone: {(time.perf_counter() - t0) / 10000 * 1e6:.1f} us")


if __name__ == "__main__":
    main()
