"""Can a from-scratch WebShop policy copy what it clicks and searches? Token-level figures, no training.

    PYTHONPATH=src python benchmarks/webshop_copy.py [--n 300] [--split train]

For the oracle's turn styles (`full`: clicks in WebShop's lower-case keys; `page`: clicks as the page shows
them) and the tiny model's tokenizer options (merge word | phrase, with and without `split_ids`), each
tokenizer trained on those demos as `agentprm sft` trains it, it prints `envs/webshop/copying.py`'s figures:
how often a clicked id's tokens occur verbatim in the page the click answers, and the search query's in the
instruction. `--strategies N` also plays simple shoppers on the first N test goals (no model): what a policy
earns once it can copy an id it sees. Single process; set OMP_NUM_THREADS=1 on shared machines.
"""

from __future__ import annotations

import argparse
import time


def strategies(n: int) -> None:
    """Mean reward / success on the first `n` test goals of: search the instruction, click a listed product,
    pick the options the instruction names (the oracle's matching rule), buy."""
    import random
    import statistics

    from agentprm.envs.webshop.env import WebShopEnv
    from agentprm.envs.webshop.expert import choose_options, expert_trajectory

    env = WebShopEnv()
    ids = env.task_ids("test", n)
    rng = random.Random(0)

    def play(pick, options: bool) -> str:
        rewards = []
        for t in ids:
            env.reset(t)
            env.step(f"search[{env.goal.instruction_text.lower()}]")
            asin = pick()
            env.step(f"click[{asin}]")
            for v in choose_options(env.catalogue.by_asin[asin], env.goal.goal_options).values() if options else ():
                env.step(f"click[{v}]")
            rewards.append(env.step("click[buy now]").reward)
        return f"mean reward {statistics.mean(rewards):.3f}, success {sum(r >= 1 for r in rewards) / n:.0%}"

    oracle = [expert_trajectory(env, t, 0) for t in ids]
    print(f"oracle: mean reward {statistics.mean(t.reward for t in oracle):.3f}")
    print(f"first listed product + options: {play(lambda: env.page_products()[0], True)}")
    print(f"first listed product, no options: {play(lambda: env.page_products()[0], False)}")
    print(f"random product of page 1 + options: {play(lambda: rng.choice(env.page_products()), True)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="demos (the first N tasks of the split)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--strategies", type=int, default=0, help="also play simple shoppers on N test goals")
    args = ap.parse_args()
    if args.strategies:
        strategies(args.strategies)

    from agentprm.conversation import trajectory_messages
    from agentprm.envs.webshop.copying import copy_stats
    from agentprm.envs.webshop.env import WebShopEnv
    from agentprm.envs.webshop.expert import THOUGHT_STYLES, expert_trajectory
    from agentprm.policy.tiny import TinyPolicyConfig, build_tokenizer

    env = WebShopEnv()
    ids = env.task_ids(args.split, args.n)
    print(f"env: {env.describe()}; {len(ids)} {args.split} tasks")
    rows = []
    for style in THOUGHT_STYLES:
        trajs = [t for t in (expert_trajectory(env, i, 0, style) for i in ids) if t.success]
        convs = [trajectory_messages(t) for t in trajs]
        for merge in ("word", "phrase"):
            for split_ids in (False, True):
                t0 = time.perf_counter()
                tok = build_tokenizer(convs, TinyPolicyConfig(tokenizer_merge=merge, split_ids=split_ids))
                st = copy_stats(tok, trajs)
                name = f"{style:<4} {merge:<6} split_ids={'on ' if split_ids else 'off'} vocab={len(tok)}"
                rows.append((name, st.rates()))
                print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    keys = list(rows[0][1])
    print("| demos, tokenizer | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, r in rows:
        cells = [f"{v:.0f}" if k in ("clicks", "tokens per demo") else f"{v:.2f}" for k, v in r.items()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
