"""The resumable, chunked search driver that `agentprm search` and `agentprm pipeline` call.

Tasks are searched in chunks of `chunk_size` (each chunk one batched search); each chunk's results are
appended to the output JSONL as soon as it ends, and a rerun skips tasks already in the file. Best-of-n
can keep its samples in a separate JSONL (`samples_path`): a later run with another reward model (or a
smaller N) on the same tasks scores those samples instead of sampling again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentprm.errors import UserError
from agentprm.policy.base import Policy
from agentprm.prm.base import RewardModel
from agentprm.rollout_io import done_task_ids
from agentprm.search.beam import BeamConfig, beam_search
from agentprm.search.best_of_n import BestOfNConfig, sample_candidates, select_best_of_n
from agentprm.search.budget import STRATEGIES, Budget  # noqa: F401 - STRATEGIES re-exported
from agentprm.search.core import EnvFactory, SearchResult
from agentprm.search.greedy import GreedyConfig, greedy
from agentprm.trajectory import JsonlWriter, Trajectory, iter_jsonl, read_trajectories


def parse_budget(strategy: str, budget: str) -> tuple[int, int]:
    """(N, M): greedy "1"; best-of-n "16" (M = 1, unused); beam "4x4" or "4" (= 4x4). See `Budget`."""
    b = Budget.parse(strategy, budget)
    return (b.n, b.m or 1)


@dataclass
class SearchSpec:
    """One search run, fully described (stored in every output record as `meta.search.config`)."""

    strategy: str = "bon"
    budget: str = "16"
    temperature: float | None = None  # None: the strategy's default (0 greedy, 0.7 bon/beam, as the paper)
    aggregation: str = "last"  # best-of-n only
    max_new_tokens: int = 128
    seed: int | None = 0
    root_copies: str = "M"  # beam only; see agentprm.search.beam
    dedup: bool = False
    finished: str = "compete"
    prm_call: str = "score"

    def __post_init__(self) -> None:
        self.budget_nm = parse_budget(self.strategy, self.budget)
        self.budget = str(Budget.parse(self.strategy, self.budget))

    def config(self) -> GreedyConfig | BestOfNConfig | BeamConfig:
        n, m = self.budget_nm
        if self.strategy == "greedy":
            return GreedyConfig(self.max_new_tokens, self.seed)
        t = 0.7 if self.temperature is None else self.temperature
        if self.strategy == "bon":
            return BestOfNConfig(n, t, self.aggregation, self.max_new_tokens, self.seed)
        return BeamConfig(
            n, m, t, self.max_new_tokens, self.seed, self.root_copies, self.dedup, self.finished, self.prm_call
        )

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items()}
        d["resolved"] = asdict(self.config())
        return d


def search_tasks(
    policy: Policy,
    rm: RewardModel | None,
    make_env: EnvFactory,
    task_ids: Sequence[str],
    spec: SearchSpec,
    samples: list[list[Trajectory]] | None = None,
) -> list[SearchResult]:
    """One batched search over `task_ids` (no I/O). `samples`: pre-drawn best-of-n candidates per task."""
    cfg = spec.config()
    if isinstance(cfg, GreedyConfig):
        return greedy(policy, make_env, task_ids, cfg)
    if rm is None:
        raise UserError(f"strategy {spec.strategy} needs a reward model: give --rm DIR (or --rm random)")
    if isinstance(cfg, BestOfNConfig):
        groups = samples if samples is not None else sample_candidates(policy, make_env, task_ids, cfg)
        return select_best_of_n(rm, groups, cfg)
    return beam_search(policy, rm, make_env, task_ids, cfg)


def load_samples(
    path: str | os.PathLike, task_ids: Sequence[str], n: int, temperature: float
) -> dict[str, list[Trajectory]]:
    """Complete sets of >= n best-of-n samples per task already in `path` (the latest set per task).

    A set is a run of records with consecutive `meta.sample_index` from 0, written by one sampling run.
    """
    if not os.path.exists(path):
        return {}
    wanted = set(task_ids)
    runs: dict[str, list[list[Trajectory]]] = {}
    for d in iter_jsonl(path):
        if d.get("task_id") not in wanted:
            continue
        t = Trajectory.from_dict(d)
        task_runs = runs.setdefault(t.task_id, [])
        if t.meta.get("sample_index") == 0 or not task_runs:
            task_runs.append([])
        task_runs[-1].append(t)
    out = {}
    for task, task_runs in runs.items():
        for run in reversed(task_runs):
            if len(run) >= n and all(r.temperature == temperature for r in run[:n]):
                out[task] = run[:n]
                break
    return out


def run_search(
    policy: Policy,
    rm: RewardModel | None,
    make_env: EnvFactory,
    task_ids: Sequence[str],
    spec: SearchSpec,
    out: str | os.PathLike,
    *,
    chunk_size: int = 32,
    samples_path: str | os.PathLike | None = None,
    command: str | None = None,
    extra_config: dict[str, Any] | None = None,
    on_progress: Callable[[int, list[SearchResult]], None] | None = None,
) -> list[Trajectory]:
    """Search every task not yet in `out`, `chunk_size` tasks at a time, appending each chunk's records.

    Returns the records of `task_ids` in `out` (old and new). `extra_config` (e.g. policy and RM paths)
    is stored with the spec in every record so each report figure can name what produced it.
    """
    if chunk_size < 1:
        raise UserError("--chunk must be at least 1")
    out = Path(out)
    done = done_task_ids(out)
    todo = [t for t in task_ids if t not in done]
    config = {**spec.to_dict(), **(extra_config or {})}
    cfg = spec.config()
    with JsonlWriter(out) as writer:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            samples = None
            if isinstance(cfg, BestOfNConfig) and samples_path is not None and rm is not None:
                have = load_samples(samples_path, chunk, cfg.n, cfg.temperature)
                missing = [t for t in chunk if t not in have]
                if missing:
                    fresh = sample_candidates(policy, make_env, missing, cfg)
                    with JsonlWriter(samples_path) as sw:
                        for group in fresh:
                            for traj in group:
                                sw.write(traj)
                    have.update({g[0].task_id: g for g in fresh})
                samples = [have[t] for t in chunk]
            results = search_tasks(policy, rm, make_env, chunk, spec, samples)
            for r in results:
                writer.write(r.to_trajectory(config, command))
            if on_progress is not None:
                on_progress(len(chunk), results)
    wanted = set(task_ids)
    return [t for t in read_trajectories(out) if t.task_id in wanted]
