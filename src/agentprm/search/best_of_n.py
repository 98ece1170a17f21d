"""Best-of-N: sample N whole trajectories at T = 0.7, keep the one the reward model scores highest.

Paper (§2): for a PRM "the score of the final step is used to represent trajectory quality", so the
default aggregation is `last`; `min`, `mean` and `product` over the steps are documented options. The
ORM is one model type with the PRMs: its last-step score is its score of the whole trajectory.

Sampling is separate from selection: `sample_candidates` runs N episodes per task once (at the largest
budget), and `select_best_of_n` scores them with any reward model. Every smaller budget n is the prefix
of the first n samples, so a whole curve N = 1..64 costs one sampling run, and several reward models
(AgentPRM, PVM, ORM, MC, random) are compared on the very same samples. Oracle@n (any of the first n
succeeds) is reported alongside: the ceiling any selector could reach.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from agentprm.conversation import trajectory_messages
from agentprm.policy.base import Policy
from agentprm.prm.base import RewardModel
from agentprm.rollout.engine import fork
from agentprm.search.core import EnvFactory, SearchResult, rank_key, root_node, run_to_end, task_seed
from agentprm.trajectory import Compute, Trajectory

AGGREGATIONS = ("last", "min", "mean", "product")


def aggregate(scores: Sequence[float], how: str = "last") -> float:
    """A trajectory's score from its per-step scores; a trajectory without steps scores -inf."""
    if not scores:
        return -math.inf
    if how == "last":
        return float(scores[-1])
    if how == "min":
        return float(min(scores))
    if how == "mean":
        return float(sum(scores) / len(scores))
    if how == "product":
        return float(math.prod(scores))
    raise ValueError(f"unknown aggregation {how!r}; choose one of {AGGREGATIONS}")


@dataclass
class Candidate:
    """What selection and the report need of one sampled trajectory (stored in the result's meta)."""

    success: bool
    reward: float
    status: str
    scores: list[float]
    compute: Compute = field(default_factory=Compute)  # its sampling, env steps and the PRM tokens to score it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        return cls(d["success"], d["reward"], d["status"], list(d["scores"]), Compute(**d.get("compute", {})))


def select(candidates: Sequence[Candidate], n: int | None = None, aggregation: str = "last") -> int:
    """Index of the best of the first `n` candidates: highest aggregated score, ties to the earliest.

    Candidates whose env or policy failed rank below every other one (`core.rank_key`, as beam search).
    """
    pool = candidates[: n or len(candidates)]
    if not pool:
        raise ValueError("no candidates to select from")
    keys = [rank_key(c.status, aggregate(c.scores, aggregation)) for c in pool]
    return max(range(len(pool)), key=lambda i: (keys[i], -i))


@dataclass
class CurvePoint:
    n: int
    success: float  # mean success of the selected trajectories
    reward: float  # mean outcome reward of the selected trajectories (BabyAI's metric)
    oracle_success: float  # share of tasks where any of the first n succeeds
    oracle_reward: float  # mean of the best reward among the first n
    compute: Compute  # summed over tasks: sampling n trajectories per task and scoring them
    tasks: int


def budgets_upto(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    out = [1 << k for k in range(n.bit_length()) if (1 << k) <= n]
    return out if out[-1] == n else [*out, n]


def bon_curve(
    groups: Sequence[Sequence[Candidate]], budgets: Sequence[int], aggregation: str = "last"
) -> list[CurvePoint]:
    """Best-of-n and oracle@n at every budget, each budget n using the first n candidates of every task."""
    points = []
    for n in budgets:
        if any(len(g) < n for g in groups):
            raise ValueError(f"budget {n} needs {n} candidates per task; some task has fewer")
        chosen = [g[select(g, n, aggregation)] for g in groups]
        compute = Compute()
        for g in groups:
            for c in g[:n]:
                compute += c.compute
        k = max(len(groups), 1)
        points.append(
            CurvePoint(
                n=n,
                success=sum(c.success for c in chosen) / k,
                reward=sum(c.reward for c in chosen) / k,
                oracle_success=sum(any(c.success for c in g[:n]) for g in groups) / k,
                oracle_reward=sum(max(c.reward for c in g[:n]) for g in groups) / k,
                compute=compute,
                tasks=len(groups),
            )
        )
    return points


@dataclass
class BestOfNConfig:
    n: int = 16
    temperature: float = 0.7  # paper
    aggregation: str = "last"  # paper; "min" | "mean" | "product" are options
    max_new_tokens: int = 128
    seed: int | None = 0


def sample_candidates(
    policy: Policy, make_env: EnvFactory, task_ids: Sequence[str], config: BestOfNConfig
) -> list[list[Trajectory]]:
    """`config.n` episodes per task at `config.temperature`, all tasks and samples in lock-step.

    Sample j of task u is seeded like episode j of u in `collect` (`episode_seed`), so the samples do not
    depend on which tasks share the batch."""
    groups = []
    for t in task_ids:
        # One env reset per task, cloned for the samples (building and resetting envs can be costly).
        root = root_node(make_env(), t, traj_id=t, policy=policy.name, temperature=config.temperature, seed=None)
        group = fork(root, [task_seed(config.seed, t, j) for j in range(config.n)])
        for j, ep in enumerate(group):
            ep.traj.id = f"{t}:sample:{j}"
            ep.traj.meta["sample_index"] = j
        groups.append(group)
    run_to_end(
        policy, [ep for g in groups for ep in g], temperature=config.temperature, max_new_tokens=config.max_new_tokens
    )
    return [[ep.traj for ep in g] for g in groups]


def score_candidates(rm: RewardModel, groups: Sequence[Sequence[Trajectory]]) -> list[list[Candidate]]:
    """Score every step of every trajectory with ONE batched `rm.score` call."""
    flat = [t for g in groups for t in g if t.steps]
    scored = iter(rm.score([trajectory_messages(t) for t in flat]))
    out = []
    for g in groups:
        cands = []
        for t in g:
            s = next(scored) if t.steps else None
            compute = Compute(**asdict(t.compute))
            compute.prm_tokens += s.tokens if s else 0
            cands.append(Candidate(t.success, t.reward, t.status, list(s.scores) if s else [], compute))
        out.append(cands)
    return out


def select_best_of_n(
    rm: RewardModel, groups: Sequence[Sequence[Trajectory]], config: BestOfNConfig
) -> list[SearchResult]:
    """Score pre-sampled candidates with `rm` and pick the best of the first `config.n` per task.

    Each result carries every candidate (success, reward, per-step scores, compute) in `details`, so the
    whole best-of-n curve for budgets <= n, oracle@n and score distributions come from the one file.
    """
    groups = [list(g[: config.n]) for g in groups]
    candidate_groups = score_candidates(rm, groups)
    results = []
    for trajs, cands in zip(groups, candidate_groups, strict=True):
        i = select(cands, config.n, config.aggregation)
        total = Compute()
        for c in cands:
            total += c.compute
        results.append(
            SearchResult(
                task_id=trajs[i].task_id,
                trajectory=trajs[i],
                compute=total,
                strategy="bon",
                budget=str(config.n),
                rm=rm.name,
                score=aggregate(cands[i].scores, config.aggregation),
                scores=cands[i].scores,
                details={"aggregation": config.aggregation, "chosen": i, "candidates": [c.to_dict() for c in cands]},
            )
        )
    return results


def best_of_n(
    policy: Policy, rm: RewardModel, make_env: EnvFactory, task_ids: Sequence[str], config: BestOfNConfig | None = None
) -> list[SearchResult]:
    """Sample `config.n` trajectories per task and select with `rm` (both batched across tasks)."""
    cfg = config or BestOfNConfig()
    return select_best_of_n(rm, sample_candidates(policy, make_env, task_ids, cfg), cfg)


def candidates_of(traj: Trajectory) -> list[Candidate]:
    """The candidates stored in a best-of-n result record."""
    return [Candidate.from_dict(d) for d in traj.meta.get("search", {}).get("candidates", [])]
