"""Labelling a trajectory file with one method: the library side of `agentprm label`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

from agentprm.conversation import trajectory_messages
from agentprm.labels.mc import MCResult
from agentprm.labels.outcome import LabelSettings, orm_labels, outcome_trusted, outcome_value, pvm_labels
from agentprm.labels.store import LabelRecord, trajectory_sampled_tokens
from agentprm.labels.td_gae import td_gae_targets
from agentprm.trajectory import Trajectory


def usable(traj: Trajectory) -> bool:
    """Trajectories whose outcome can be trusted (env/policy errors are data, not failures)."""
    return traj.num_steps > 0 and outcome_trusted(traj.status)


def outcome_label_records(
    method: str, trajectories: Iterable[Trajectory], settings: LabelSettings, scorer: Any = None, batch: int = 32
) -> Iterator[LabelRecord]:
    """td-gae / pvm / orm labels. td-gae bootstraps from `scorer`'s step scores (a `RewardModel`);
    without one, from Q = 0 (what a freshly initialised, zero-head PRM predicts): Q̂_t = (γλ)^{T−t}·r."""
    trajs = list(trajectories)
    for start in range(0, len(trajs), batch):
        chunk = trajs[start : start + batch]
        if method == "td-gae" and scorer is not None:
            qs = [s.scores for s in scorer.score([trajectory_messages(t) for t in chunk])]
        else:
            qs = [[0.0] * t.num_steps for t in chunk]
        for traj, q in zip(chunk, qs, strict=True):
            r = outcome_value(traj, settings.binary_outcome)
            if method == "td-gae":
                labels: list[float | None] = [
                    float(v)
                    for v in td_gae_targets(q, r, gamma=settings.gamma, lam=settings.lam, bootstrap=settings.bootstrap)
                ]
                extra = {"q_from": getattr(scorer, "name", "zero") if scorer is not None else "zero"}
            elif method == "pvm":
                labels, extra = list(pvm_labels(traj, settings.binary_outcome)), {}
            elif method == "orm":
                labels, extra = orm_labels(traj, settings.binary_outcome), {}
            else:
                raise ValueError(f"unknown method {method!r}")
            yield LabelRecord(
                traj.id,
                traj.task_id,
                method,
                labels,
                trajectory_sampled_tokens(traj),
                {**asdict(settings), **extra},
                env=traj.env,
            )


def mc_record(traj: Trajectory, res: MCResult, settings: dict[str, Any]) -> LabelRecord:
    return LabelRecord(
        traj.id,
        traj.task_id,
        "mc",
        list(res.labels),
        res.seed_tokens + res.rollout_tokens,
        {
            **settings,
            "rollout_tokens": res.rollout_tokens,
            "seed_tokens": res.seed_tokens,
            "rollouts": res.rollouts,
            "rollout_errors": res.rollout_errors,
        },
        env=traj.env,
    )


def mc_label_records(
    trajectories: Iterable[Trajectory],
    make_env: Any,
    policy: Any,
    *,
    n_mc: int = 16,
    soft: bool = False,
    binary_outcome: bool = False,
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    seed: int | None = 0,
) -> Iterator[LabelRecord]:
    """MC labels (N_mc rollouts of `policy` from every step, `labels.mc`), one record per trajectory."""
    from agentprm.labels.mc import mc_label_trajectories, policy_rollout_fn

    trajs = list(trajectories)
    by_id = {t.id: t for t in trajs}
    rollout_fn = policy_rollout_fn(policy, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    info = {"n_mc": n_mc, "soft": soft, "temperature": temperature, "binary_outcome": binary_outcome}
    for res in mc_label_trajectories(trajs, make_env, rollout_fn, n_mc=n_mc, soft=soft, binary_outcome=binary_outcome):
        yield mc_record(by_id[res.trajectory_id], res, info)
