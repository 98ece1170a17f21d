"""Expert demonstrations: run an env's expert over a split and append the trajectories to JSONL."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agentprm.envs.base import check_split, get_spec
from agentprm.errors import UserError
from agentprm.rollout_io import done_task_ids
from agentprm.trajectory import JsonlWriter, Trajectory


@dataclass
class DemoSummary:
    tried: int = 0
    ok: int = 0
    skipped: int = 0  # already in the output file (resume)
    groups: Counter[str] = field(default_factory=Counter)  # episodes per meta["group"] (e.g. BabyAI level)
    groups_ok: Counter[str] = field(default_factory=Counter)

    @property
    def success_rate(self) -> float:
        return self.ok / self.tried if self.tried else float("nan")


def make_expert(env_name: str, thought_style: str | None = None) -> Callable[..., Trajectory]:
    """The env's expert `(env, task_id, seed) -> Trajectory`, with `thought_style` where it offers styles."""
    import functools
    import inspect

    expert = get_spec(env_name).make_expert()
    if thought_style is None:
        return expert
    styles = getattr(inspect.getmodule(expert), "THOUGHT_STYLES", ())
    if not styles:
        raise UserError(f"the {env_name} expert has one thought style; drop --thought-style")
    if thought_style not in styles:
        raise UserError(f"unknown thought style {thought_style!r}; choose one of {', '.join(styles)}")
    return functools.partial(expert, thought_style=thought_style)


def run_expert(
    env_name: str,
    split: str,
    n: int,
    out: str | Path,
    *,
    seed: int = 0,
    keep_failures: bool | None = None,
    thought_style: str | None = None,
    renamed_copies: int = 0,
    on_start: Callable[[int], None] | None = None,
    on_episode: Callable[[Trajectory, DemoSummary], None] | None = None,
    workers: int = 1,
) -> DemoSummary:
    """Run the expert of `env_name` on the first `n` task ids of `split`, skipping ids already in `out`.

    `keep_failures=None` takes the env's default (`EnvSpec.demos_keep_failures`). `thought_style`
    picks the expert's thoughts where its module lists `THOUGHT_STYLES` (TextCraft); None: its default.
    `renamed_copies=K` writes K augmented copies after every successful demo (`EnvSpec.augmenter`,
    TextCraft: item words renamed, see `envs/textcraft_augment.py`); they are SFT data, not episodes,
    and are not counted in the summary's tried/ok. `workers` > 1 runs the expert in that many
    processes (BabyAI's BFS + bot planner is pure Python, ~0.3 s a demo); the file's order stays the
    task order, so the output is the same as with one.
    """
    import random

    spec = get_spec(env_name)
    check_split(split)
    if n < 1:
        raise UserError("--n must be at least 1")
    keep = spec.demos_keep_failures if keep_failures is None else keep_failures
    env = spec.make()
    expert = make_expert(env_name, thought_style)
    augment = spec.make_augmenter() if renamed_copies > 0 else None
    task_ids = env.task_ids(split, n)
    done = done_task_ids(out)
    todo = [t for t in task_ids if t not in done]
    summary = DemoSummary(skipped=len(task_ids) - len(todo))
    if on_start:
        on_start(len(todo))
    with JsonlWriter(out) as writer, _expert_runs(env_name, thought_style, env, expert, todo, seed, workers) as runs:
        for task_id, traj in zip(todo, runs):
            summary.tried += 1
            summary.ok += traj.success
            group = str(traj.meta.get("group", ""))
            summary.groups[group] += 1
            summary.groups_ok[group] += traj.success
            if traj.success or keep:
                writer.write(traj)
            if augment is not None and traj.success:
                rng = random.Random(f"{seed}:{task_id}")  # the same copies on a resumed run
                for k in range(renamed_copies):
                    writer.write(augment(traj, rng, k))
            if on_episode:
                on_episode(traj, summary)
    return summary


_WORKER: tuple = ()


def _init_worker(env_name: str, thought_style: str | None) -> None:
    global _WORKER
    _WORKER = (get_spec(env_name).make(), make_expert(env_name, thought_style))


def _run_one(task_id: str, seed: int) -> Trajectory:
    env, expert = _WORKER
    return expert(env, task_id, seed)


@contextlib.contextmanager
def _expert_runs(env_name, thought_style, env, expert, todo: list[str], seed: int, workers: int) -> Iterator:
    """The expert's trajectories for `todo`, in order: in this process, or in a pool of `workers`."""
    if workers <= 1 or len(todo) < 2:
        yield (expert(env, t, seed) for t in todo)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the caller may hold torch's thread pool, which a forked child can deadlock on
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(todo)), ctx, _init_worker, (env_name, thought_style)) as pool:
        yield pool.map(_run_one, todo, [seed] * len(todo), chunksize=4)
