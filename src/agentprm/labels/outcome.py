"""Outcome-based labels: PVM (every step gets r) and ORM (one label r for the whole trajectory).

The outcome r is the env's raw reward by default (paper.md §9 item 6: raw or binary is not stated;
raw keeps BabyAI's graded reward and WebShop's match score); `binary=True` uses 0/1 success instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentprm.trajectory import Trajectory


@dataclass(frozen=True)
class LabelSettings:
    """How trajectories become targets; shared by `label` and `train-prm` so they cannot disagree."""

    gamma: float = 1.0  # §9.1: not given; Eq 7-8 need 1
    lam: float = 0.95  # paper
    bootstrap: str = "literal"  # §9.2: "literal" (paper Eq 12-14) | "next" (SARSA(λ))
    binary_outcome: bool = False  # §9.6: raw env reward (default) or 0/1 success


def outcome_value(traj: Trajectory, binary: bool = False) -> float:
    """r(u, τ): the raw outcome reward, or 1.0/0.0 success when `binary`."""
    if binary:
        return 1.0 if traj.success else 0.0
    return float(traj.reward)


def pvm_labels(traj: Trajectory, binary: bool = False) -> list[float]:
    """PVM: the trajectory's outcome assigned to every step (= TD-GAE with λ = γ = 1)."""
    return [outcome_value(traj, binary)] * traj.num_steps


def orm_labels(traj: Trajectory, binary: bool = False) -> list[float | None]:
    """ORM: one label for the whole trajectory, carried by its last step; earlier steps are unlabelled (None)."""
    n = traj.num_steps
    return [None] * (n - 1) + [outcome_value(traj, binary)] if n else []


# Statuses where the env or the policy failed: data, never a reward of 0.
FAILED_STATUSES = ("env_error", "policy_error")
# ... and those whose outcome cannot be trusted: a failure, or an episode that never ended.
UNTRUSTED_STATUSES = (*FAILED_STATUSES, "running")


def failed(status: str) -> bool:
    """Whether the env or the policy failed: search ranks such candidates below every other one."""
    return status in FAILED_STATUSES


def outcome_trusted(status: str) -> bool:
    """Whether an episode that ended with `status` has an outcome labels, training and metrics can use."""
    return status not in UNTRUSTED_STATUSES


def metric_value(outcome: Any, metric: str) -> float:
    """An outcome's value under an env's metric ("success": 1/0; "reward": the raw reward, BabyAI's metric),
    for anything with `.success` and `.reward` (a Trajectory, a best-of-n Candidate)."""
    if metric == "reward":
        return float(outcome.reward)
    if metric == "success":
        return 1.0 if outcome.success else 0.0
    raise ValueError(f"unknown metric {metric!r}; envs use 'success' or 'reward'")


# The label file each PRM objective trains on (`labels/<method>.jsonl`): AgentPRM (and its beta = 0
# ablation) regresses on TD-GAE targets, both MC PRMs (mc: L_Q only; mc-la: with L_A) on the same MC labels;
# the vocabulary the pipeline writes and the report reads.
LABEL_METHOD = {
    "agentprm": "td-gae",
    "agentprm-beta0": "td-gae",
    "pvm": "pvm",
    "orm": "orm",
    "mc": "mc",
    "mc-la": "mc",
}


def label_method(objective: str) -> str | None:
    """The label method (`labels/<method>.jsonl`) an objective's PRM trains on; None for unknown names."""
    return LABEL_METHOD.get(objective)
