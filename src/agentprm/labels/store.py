"""Label files (`labels/<method>.jsonl`: one record per trajectory) and the TRL stepwise export.

Record: {"trajectory_id", "task_id", "method", "labels": [per step; null = unlabelled],
"sampled_tokens": the policy tokens these labels cost (Table 3's unit), "settings": {...}}.
For td-gae/pvm/orm the cost is the trajectory's own sampled tokens; for mc it is the seed trajectory's
plus every MC rollout's.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from agentprm.trajectory import Trajectory, iter_jsonl

METHODS = ("td-gae", "pvm", "orm", "mc")


@dataclass
class LabelRecord:
    trajectory_id: str
    task_id: str
    method: str
    labels: list[float | None]
    sampled_tokens: int
    settings: dict[str, Any] = field(default_factory=dict)
    env: str = ""  # the trajectory's env, so reports can total label cost per env

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_labels(path: str | os.PathLike) -> dict[str, LabelRecord]:
    """Label records by trajectory id (a later record for the same id wins)."""
    return {d["trajectory_id"]: LabelRecord(**d) for d in iter_jsonl(path)}


def trajectory_sampled_tokens(traj: Trajectory) -> int:
    return sum(s.generated_tokens for s in traj.steps) or traj.compute.policy_generated_tokens


def to_trl_stepwise(traj: Trajectory, labels: list[float | None], threshold: float | None = 0.5) -> dict[str, Any]:
    """TRL's stepwise-supervision row {prompt, completions, labels}.

    prompt = the system prompt and first observation; completion t = step t's output, preceded by the
    observation it answered for t > 0 (so the text of the row is the whole episode, in order). TRL's
    labels are booleans: label >= `threshold`; `threshold=None` keeps the float labels. TRL has no
    "unlabelled" value, so ORM's unlabelled earlier steps take the trajectory's (last) label.
    """
    if len(labels) != traj.num_steps:
        raise ValueError(f"{traj.id}: {len(labels)} labels for {traj.num_steps} steps")
    completions = [s.output if s.t == 0 else f"{s.observation}\n{s.output}" for s in traj.steps]
    filled: list[float] = []
    for v in labels:
        fill = v if v is not None else labels[-1]
        if fill is None:
            raise ValueError(f"{traj.id}: unlabelled steps but no last label to fill them with")
        filled.append(fill)
    out = [bool(v >= threshold) for v in filled] if threshold is not None else [float(v) for v in filled]
    return {
        "prompt": f"{traj.system_prompt}\n\n{traj.first_observation}",
        "completions": completions,
        "labels": out,
        "trajectory_id": traj.id,
    }
