"""Greedy decoding (T = 0): the SFT baseline of the paper's Table 1, batched across tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentprm.policy.base import Policy
from agentprm.rollout.engine import new_episode
from agentprm.search.core import EnvFactory, SearchResult, run_to_end, task_seed


@dataclass
class GreedyConfig:
    max_new_tokens: int = 128
    seed: int | None = 0  # unused at T = 0 by a correct policy; passed for policies that sample anyway


def greedy(
    policy: Policy, make_env: EnvFactory, task_ids: Sequence[str], config: GreedyConfig | None = None
) -> list[SearchResult]:
    """One greedy episode per task, all tasks in lock-step (one policy call a round)."""
    cfg = config or GreedyConfig()
    episodes = [
        new_episode(
            make_env(), t, traj_id=f"{t}:greedy", policy=policy.name, temperature=0.0, seed=task_seed(cfg.seed, t)
        )
        for t in task_ids
    ]
    run_to_end(policy, episodes, temperature=0.0, max_new_tokens=cfg.max_new_tokens)
    return [SearchResult(ep.traj.task_id, ep.traj, ep.traj.compute, "greedy", "1") for ep in episodes]
