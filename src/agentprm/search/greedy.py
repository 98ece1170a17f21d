"""Greedy decoding (T = 0): the SFT baseline of the paper's Table 1, batched across tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentprm.policy.base import Policy
from agentprm.search.core import EnvFactory, SearchResult, root_node, run_episodes


@dataclass
class GreedyConfig:
    max_new_tokens: int = 128
    seed: int | None = 0  # unused at T = 0 by a correct policy; passed for policies that sample anyway


def greedy(policy: Policy, make_env: EnvFactory, task_ids: Sequence[str], config: GreedyConfig | None = None) -> list[SearchResult]:
    """One greedy episode per task, all tasks in lock-step (one policy call a round)."""
    cfg = config or GreedyConfig()
    roots = [
        root_node(make_env(), t, traj_id=f"{t}:greedy", policy=policy.name, temperature=0.0, seed=cfg.seed)
        for t in task_ids
    ]
    groups = run_episodes(policy, roots, n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    results = []
    for t, (node,) in zip(task_ids, groups, strict=True):
        results.append(SearchResult(t, node.traj, node.traj.compute, "greedy", "1"))
    return results
