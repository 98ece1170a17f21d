"""What every search strategy shares: the search tree `Node`, the per-task seeds, and `SearchResult`.

All strategies run many tasks at once on the rollout engine (`agentprm.rollout.engine`): every round
makes ONE batched policy call over every live node of every task (and, for PRM-guided strategies, one
batched reward-model call), so the model sees large batches. Seeds follow the engine's scheme: episode
j of task u is seeded `episode_seed(seed, u, j)` (the seed `collect` gives episode j of u) and turn t
samples with `sub_seed(episode seed, t)`, so what a task samples never depends on the other tasks in
the batch: batched search equals task-by-task search, for the HF policy as for the test fakes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from agentprm.conversation import Message
from agentprm.envs.base import Env
from agentprm.labels.outcome import FAILED_STATUSES, failed  # noqa: F401 (FAILED_STATUSES re-exported)
from agentprm.policy.base import Policy
from agentprm.rollout.engine import Episode, RolloutConfig, new_episode, run_episodes, start
from agentprm.rollout.jobs import episode_seed
from agentprm.trajectory import Compute, Trajectory

EnvFactory = Callable[[], Env]

# Ended candidates with nothing to evaluate: the env or the policy failed (errors are data, never reward 0).


def rank_key(status: str, score: float | None) -> tuple[bool, float]:
    """How every strategy ranks a candidate (higher is better): failed ones below all others, then by score.

    Best-of-N and beam search both sort with this, so they agree on failed candidates."""
    return (not failed(status), score if score is not None else float("-inf"))


@dataclass
class Node(Episode):
    """A partial (or ended) trajectory with the env at its state; `scores` are the RM's per-step scores."""

    scores: list[float] = field(default_factory=list)
    # The reward model's state after scoring this node's last turn (an incremental RM's keys/values),
    # so its children are scored from here; None: score from scratch.
    rm_state: Any = field(default=None, repr=False, compare=False)

    @property
    def score(self) -> float | None:
        """The node's score: the RM's score of its last step (the paper's trajectory score)."""
        return self.scores[-1] if self.scores else None

    def candidate_messages(self, output: str) -> list[Message]:
        """(s_t, a): the conversation with `output` as the next assistant turn, before the env answers."""
        return [*self.messages(), {"role": "assistant", "content": output}]


def task_seed(seed: int | None, task_id: str, k: int = 0) -> int | None:
    """The seed of episode `k` of `task_id` in a search seeded `seed` (None: unseeded)."""
    return None if seed is None else episode_seed(seed, task_id, k)


def root_node(env: Env, task_id: str, *, traj_id: str, policy: str, temperature: float, seed: int | None) -> Node:
    """`env` reset on `task_id`; an env failure gives an ended node with status `env_error` (data, not a crash)."""
    ep = new_episode(env, task_id, traj_id=traj_id, policy=policy, temperature=temperature, seed=seed)
    return start(Node(ep.traj, ep.env))


def run_to_end(policy: Policy, episodes: Sequence[Episode], *, temperature: float, max_new_tokens: int) -> None:
    """Run every episode to its end, the policy's batch size of them live at a time (one policy call a
    round over the live ones; a finished episode's slot goes to the next). Not all at once: 16 tasks x 16
    samples live together need 256 conversations' keys/values in the prefix store, which then evicts
    what the next round needs (a BabyAI best-of-16 chunk took minutes at 6 GB). Each episode samples with
    its own seeds, so the result does not depend on the batch."""
    live = getattr(policy, "batch_size", None) or 64
    cfg = RolloutConfig(
        temperature=temperature, max_new_tokens=max_new_tokens, batch_size=max(1, min(live, len(episodes)))
    )
    for _ in run_episodes(policy, episodes, cfg):
        pass


@dataclass
class SearchResult:
    """The trajectory a search chose for one task, and everything the search spent on that task."""

    task_id: str
    trajectory: Trajectory  # the chosen one; its own `compute` is what that one path cost
    compute: Compute  # the whole search on this task: every sampled candidate, every PRM call, every env step
    strategy: str  # "greedy" | "bon" | "beam"
    budget: str  # "1", "16", "4x4"
    rm: str | None = None  # the reward model's name; None for greedy
    score: float | None = None  # the RM's score of the chosen trajectory
    scores: list[float] = field(default_factory=list)  # the RM's per-step scores of the chosen trajectory
    details: dict[str, Any] = field(default_factory=dict)  # strategy-specific (BoN: every candidate)

    @property
    def success(self) -> bool:
        return self.trajectory.success

    def to_trajectory(self, config: dict[str, Any] | None = None, command: str | None = None) -> Trajectory:
        """The JSONL record: the chosen trajectory with `compute` = the whole search's cost and
        `meta["search"]` = strategy, budget, rm, score(s), config, command and the details."""
        traj = copy.deepcopy(self.trajectory)
        traj.meta["path_compute"] = asdict(traj.compute)
        traj.compute = copy.deepcopy(self.compute)
        traj.meta["search"] = {
            "strategy": self.strategy,
            "budget": self.budget,
            "rm": self.rm,
            "score": self.score,
            "scores": list(self.scores),
            "config": config or {},
            "command": command,
            **self.details,
        }
        return traj
