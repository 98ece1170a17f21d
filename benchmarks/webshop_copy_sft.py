"""Does the tiny policy learn to copy WebShop's product ids? A short SFT per arm, then copy checks.

    PYTHONPATH=src python benchmarks/webshop_copy_sft.py --out DIR [--train 200] [--steps 120] [--test 30]
        [--arms full:word:off,page:word:on]

An arm is `style:merge:split_ids` (the oracle's turn style, the tiny tokenizer's merge mode and `split_ids`).
Each arm writes oracle demos of the first `--train` train tasks, trains the tiny default on them for a fixed
number of steps (`train_sft`), then on the oracle's demos of the first `--test` test tasks it reports:
- teacher-forced: share of product clicks whose id the model predicts token for token (argmax), in the
  thought (copied from the page) and in the action (copied from the thought);
- free: from the oracle's history up to the page it clicked a product on, the model's greedy turn: does it
  click a product the page lists (valid), and the oracle's product?
Full greedy episodes are `agentprm eval --policy DIR/ARM/policy --env webshop --split test`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def evaluate(policy_dir: Path, style: str, n_test: int, max_new_tokens: int) -> dict[str, float]:
    import torch

    from agentprm.conversation import trajectory_messages
    from agentprm.envs.webshop.copying import id_click_positions
    from agentprm.envs.webshop.env import WebShopEnv, parse_webshop_action
    from agentprm.envs.webshop.expert import expert_trajectory
    from agentprm.policy.hf import HFPolicy

    env = WebShopEnv()
    pol = HFPolicy.load(policy_dir, batch_size=8)
    tok, model = pol.tokenizer, pol.model
    trajs = [expert_trajectory(env, t, 0, style) for t in env.task_ids("test", n_test)]
    clicks = thought_ok = action_ok = 0
    prompts, pages, wanted = [], [], []
    for traj in trajs:
        ids, found = id_click_positions(tok, traj)
        with torch.no_grad():
            pred = model(torch.tensor([ids])).logits[0].argmax(-1).tolist()
        for thought, action in found:
            clicks += 1
            thought_ok += bool(thought) and all(pred[i - 1] == ids[i] for i in thought)
            action_ok += all(pred[i - 1] == ids[i] for i in action)
        for k, step in enumerate(traj.steps):
            if "looks like" in step.output:  # the oracle's product click
                prompts.append(trajectory_messages(traj, k)[:-1])
                pages.append({a.lower() for a in step.observation.split(" [SEP] ") if a in env.catalogue.by_asin})
                wanted.append(step.action[len("click[") : -1].lower())
                break
    gens = pol.generate(prompts, temperature=0.0, max_new_tokens=max_new_tokens)
    valid = same = 0
    examples = []
    for g, page, want in zip(gens, pages, wanted):
        name, arg = parse_webshop_action(env.parse_action(g[0].text))
        valid += name == "click" and arg in page
        same += name == "click" and arg == want
        if len(examples) < 3:
            examples.append(g[0].text[-80:])
    n = max(len(prompts), 1)
    return {
        "test demos": len(trajs),
        "clicks": clicks,
        "teacher-forced id in thought": thought_ok / max(clicks, 1),
        "teacher-forced id in action": action_ok / max(clicks, 1),
        "free click turns": len(prompts),
        "free click valid": valid / n,
        "free click = oracle's": same / n,
        "examples": examples,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--arms", default="full:word:off,page:word:on")
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--test", type=int, default=30)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from agentprm.envs.webshop.env import WebShopEnv
    from agentprm.envs.webshop.expert import expert_trajectory
    from agentprm.policy.sft import SFTConfig, train_sft
    from agentprm.policy.tiny import TinyPolicyConfig
    from agentprm.trajectory import write_trajectories

    torch.set_num_threads(args.threads)
    env = WebShopEnv()
    for arm in args.arms.split(","):
        style, merge, split = arm.split(":")
        d = args.out / arm.replace(":", "-")
        d.mkdir(parents=True, exist_ok=True)
        demos = d / "demos.jsonl"
        if not demos.is_file():
            write_trajectories(demos, [expert_trajectory(env, t, 0, style) for t in env.task_ids("train", args.train)])
        cfg = SFTConfig(
            epochs=1000.0,
            max_steps=args.steps,
            batch_size=args.batch_size,
            max_length=args.max_length,
            threads=args.threads,
            bf16=True,
            tiny=TinyPolicyConfig(tokenizer_merge=merge, split_ids=split == "on"),
        )
        t0 = time.process_time()
        res = train_sft(demos, "tiny", d / "policy", cfg, report_to=None)
        sft_cpu = time.process_time() - t0
        t0 = time.process_time()
        report = evaluate(d / "policy", style, args.test, args.max_new_tokens)
        report.update(arm=arm, sft=res.summary(), sft_cpu_s=round(sft_cpu), eval_cpu_s=round(time.process_time() - t0))
        print(json.dumps(report), flush=True)
        (d / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
