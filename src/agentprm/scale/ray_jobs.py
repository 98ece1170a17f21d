"""Stages on a Ray cluster: `collect`, `eval`, MC `label` and `search` with `--ray ADDRESS`.

Each Ray actor holds one policy replica (and reward model) and builds its own envs; the driver splits
the work into shards (episodes, trajectories or tasks), keeps every actor busy with a couple of shards
in flight, and appends each shard's records to the SAME resumable JSONL the in-process command writes,
as soon as the shard comes back. Only the driver writes, so a rerun after kill -9 of the driver (or of a
worker: the actor is restarted and its shard retried) skips what is in the file and duplicates nothing.

Results equal the in-process run's at the same seeds: every episode, MC rollout and search is seeded
from its own ids (`episode_seed`), never from the batch or the machine it ran on.

Ray is the `ray` extra and imported only here, when `--ray` is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentprm.errors import UserError


# -- what a worker runs: a picklable description; the worker loads the heavy parts once -------------------
@dataclass
class Stage:
    """A stage's worker side: `load()` once per actor, then `run(ctx, shard)` per shard -> JSON records."""

    policy: str = ""  # policy dir (HFPolicy.load), loaded once per actor
    env: str = ""  # env name (`agentprm envs`), or empty with `env_factory`
    env_factory: Callable[[], Any] | None = None  # a picklable factory (tests: a class), instead of `env`
    batch_size: int = 64
    threads: int = 1  # torch threads per actor
    backend: str = "hf"  # generation backend: hf | vllm (give each actor a GPU: RayOptions.gpus_per_worker)
    max_rounds: int = 0  # `--max-rounds`: cap every episode below the env's own (0: the env's own)
    dtype: str | None = None  # the policy's weights (`--bf16`: bfloat16); None: the backend's default

    def load_key(self) -> tuple:
        """What `load` depends on: an actor reloads only when this changes."""
        return (
            self.policy,
            self.env,
            self.env_factory,
            self.batch_size,
            self.threads,
            self.backend,
            self.max_rounds,
            self.dtype,
        )

    def make_env_factory(self) -> Callable[[], Any]:
        if self.env_factory is not None:
            if self.max_rounds:  # a factory makes its envs as it likes: a cap here would be ignored
                raise ValueError("Stage.max_rounds needs `env`; give `env_factory` envs with the cap built in")
            return self.env_factory
        from agentprm.envs import get_spec

        return get_spec(self.env).maker(self.max_rounds)  # the same capped factory as the in-process run

    def load_policy(self) -> Any:
        from agentprm.policy.vllm import load_policy_backend

        dtype = {"dtype": self.dtype} if self.dtype else {}
        return load_policy_backend(self.policy, self.backend, batch_size=self.batch_size, **dtype)

    def load(self) -> dict[str, Any]:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        return {"policy": self.load_policy(), "make_env": self.make_env_factory()}

    def run(self, ctx: dict[str, Any], shard: list[Any]) -> list[dict[str, Any]]:
        raise NotImplementedError


@dataclass
class RolloutStage(Stage):
    """collect / eval: shard = [(task_id, k)] episodes."""

    temperature: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0

    def run(self, ctx: dict[str, Any], shard: list[Any]) -> list[dict[str, Any]]:
        from agentprm.rollout.engine import RolloutConfig
        from agentprm.rollout.jobs import rollout_episodes

        cfg = RolloutConfig(
            temperature=self.temperature, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size
        )
        return [
            t.to_dict()
            for t in rollout_episodes(
                ctx["policy"], ctx["make_env"], [tuple(p) for p in shard], cfg=cfg, seed=self.seed
            )
        ]


@dataclass
class MCLabelStage(Stage):
    """MC `label`: shard = trajectory dicts; records = label records."""

    n_mc: int = 16
    soft: bool = False
    binary_outcome: bool = False
    temperature: float = 1.0
    max_new_tokens: int = 128
    seed: int | None = 0

    def run(self, ctx: dict[str, Any], shard: list[Any]) -> list[dict[str, Any]]:
        from agentprm.labels.run import mc_label_records
        from agentprm.trajectory import Trajectory

        trajs = [Trajectory.from_dict(d) for d in shard]
        recs = mc_label_records(
            trajs,
            ctx["make_env"],
            ctx["policy"],
            n_mc=self.n_mc,
            soft=self.soft,
            binary_outcome=self.binary_outcome,
            temperature=self.temperature,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
        )
        return [r.to_dict() for r in recs]


@dataclass
class SearchStage(Stage):
    """`search`: shard = task ids; records = the chosen trajectory per task (as `run_search` writes)."""

    rm: str | None = None  # what --rm names (a PRM dir, an http URL, random[:SEED]); None for greedy
    spec: dict[str, Any] = field(default_factory=dict)  # SearchSpec fields
    config: dict[str, Any] = field(default_factory=dict)  # stored in every record, as in-process
    command: str | None = None

    def load_key(self) -> tuple:
        return (*super().load_key(), self.rm)

    def load(self) -> dict[str, Any]:
        from agentprm.search.loading import load_reward_model

        ctx = super().load()
        ctx["rm"] = None if self.rm is None else load_reward_model(self.rm)
        return ctx

    def run(self, ctx: dict[str, Any], shard: list[Any]) -> list[dict[str, Any]]:
        from agentprm.search.runner import SearchSpec, search_tasks

        spec = SearchSpec(**self.spec)
        results = search_tasks(ctx["policy"], ctx["rm"], ctx["make_env"], list(shard), spec)
        return [r.to_trajectory(self.config, self.command).to_dict() for r in results]


# -- the cluster side ---------------------------------------------------------------------------------------
@dataclass
class RayOptions:
    address: str = "auto"  # "auto": a running local cluster if there is one, else start one; or HOST:PORT / ray://
    workers: int = 0  # actors (0: one per CPU of the cluster, at most one per shard)
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    in_flight: int = 2  # shards queued per actor, so an actor never waits for the driver
    max_restarts: int = 2  # a killed worker is restarted and its shard retried this many times
    init_kwargs: dict[str, Any] = field(default_factory=dict)  # extra ray.init arguments (tests: num_cpus)


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise UserError('--ray needs Ray: pip install "agentprm[ray]" (or pip install ray)') from None
    return ray


def init_ray(opts: RayOptions) -> Any:
    """Connect to (or start) the cluster. Workers must import the same agentprm: on a local cluster they
    inherit the driver's environment; on a remote one, install agentprm on every node."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    kw: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
        **opts.init_kwargs,
    }
    if opts.address != "auto":
        kw["address"] = opts.address
    if os.environ.get("PYTHONPATH"):  # local workers inherit it; a relative entry would break from their cwd
        os.environ["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(p) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p
        )
    try:
        ray.init(**kw)
    except ConnectionError as e:
        raise UserError(
            f"cannot reach a Ray cluster at {opts.address}: {e}; start one with `ray start --head` or use --ray auto"
        ) from None
    return ray


class _Worker:
    """A Ray actor: loads a stage's heavy parts (policy replica, reward model, env factory) once and keeps
    them while later stages need the same ones (collect, then label, then search in one driver)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.ctx: dict[str, Any] = {}

    def run(self, stage: Stage, shard: list[Any]) -> list[dict[str, Any]]:
        key = stage.load_key()
        if key != self.key:
            self.ctx, self.key = {}, None  # free the old replica before loading the next
            self.ctx, self.key = stage.load(), key
        return stage.run(self.ctx, shard)


_POOL: dict[str, Any] = {}  # the driver's actors, reused by every stage of this Ray session


def _actors(ray: Any, opts: RayOptions, n: int) -> list[Any]:
    key = (ray.get_runtime_context().get_job_id(), opts.cpus_per_worker, opts.gpus_per_worker, opts.max_restarts)
    if _POOL.get("key") != key:
        _POOL.clear()
        _POOL.update(key=key, actors=[])
    actors = _POOL["actors"]
    actor_cls = ray.remote(
        num_cpus=opts.cpus_per_worker,
        num_gpus=opts.gpus_per_worker,
        max_restarts=opts.max_restarts,
        max_task_retries=opts.max_restarts,
    )(_Worker)
    while len(actors) < n:
        actors.append(actor_cls.remote())
    return actors[:n]


def run_sharded(stage: Stage, shards: Sequence[list[Any]], opts: RayOptions) -> Iterator[list[dict[str, Any]]]:
    """Run every shard on the cluster; yield each shard's records as soon as it comes back (any order).

    The caller appends them to its JSONL; a shard whose worker died past `max_restarts` raises, with
    every earlier shard already yielded (and so saved): a rerun finishes the rest.
    """
    if not shards:
        return
    ray = init_ray(opts)
    n = opts.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // max(opts.cpus_per_worker, 1e-9)))
    actors = _actors(ray, opts, max(1, min(n, len(shards))))
    stage_ref = ray.put(stage)
    queue = list(range(len(shards)))
    pending: dict[Any, int] = {}  # object ref -> actor index
    load = [0] * len(actors)

    def feed() -> None:
        for a in range(len(actors)):
            while queue and load[a] < opts.in_flight:
                ref = actors[a].run.remote(stage_ref, shards[queue.pop(0)])
                pending[ref] = a
                load[a] += 1

    feed()
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ref = done[0]
        a = pending.pop(ref)
        load[a] -= 1
        try:
            records = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            _POOL.clear()
            raise RuntimeError(
                f"a Ray worker died past {opts.max_restarts} restarts ({type(e).__name__}); "
                "finished shards are saved: rerun the same command to resume"
            ) from None
        feed()
        yield records


def shards_of(items: Sequence[Any], size: int) -> list[list[Any]]:
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# -- drivers: the same outputs as the in-process jobs ---------------------------------------------------------
def rollout_on_ray(
    stage: RolloutStage,
    task_ids: list[str],
    n_per_task: int,
    out: Any,
    opts: RayOptions,
    *,
    shard_size: int = 0,
    on_done: Callable[[Any, Any], None] | None = None,
) -> Any:
    """`rollout_tasks` on the cluster: same episodes, ids, seeds and output file; returns its `JobSummary`."""
    from agentprm.rollout.jobs import JobSummary, todo_pairs
    from agentprm.trajectory import JsonlWriter, Trajectory

    todo = todo_pairs(task_ids, n_per_task, out)
    summary = JobSummary(skipped=len(task_ids) * n_per_task - len(todo))
    with JsonlWriter(out) as writer:
        for records in run_sharded(stage, shards_of(todo, shard_size or stage.batch_size), opts):
            for d in records:
                traj = Trajectory.from_dict(d)
                writer.write(traj)
                summary.add(traj)
                if on_done:
                    on_done(traj, summary)
    return summary


def mc_label_on_ray(
    stage: MCLabelStage,
    trajectories: list[Any],
    out: Any,
    opts: RayOptions,
    *,
    shard_size: int = 8,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """MC labels of `trajectories` (those not yet in `out`: the caller filters) appended to `out`."""
    from agentprm.trajectory import JsonlWriter

    with JsonlWriter(out) as writer:
        for records in run_sharded(stage, shards_of([t.to_dict() for t in trajectories], shard_size), opts):
            for d in records:
                writer.write(d)
                if on_record:
                    on_record(d)


def search_on_ray(
    stage: SearchStage,
    task_ids: list[str],
    out: Any,
    opts: RayOptions,
    *,
    chunk_size: int = 32,
    on_progress: Callable[[int, list[Any]], None] | None = None,
) -> list[Any]:
    """`run_search` on the cluster (each shard one batched search of `chunk_size` tasks); returns the
    records of `task_ids` in `out`, old and new."""
    from agentprm.rollout_io import done_task_ids
    from agentprm.trajectory import JsonlWriter, Trajectory, read_trajectories

    done = done_task_ids(out)
    todo = [t for t in task_ids if t not in done]
    with JsonlWriter(out) as writer:
        for records in run_sharded(stage, shards_of(todo, chunk_size), opts):
            trajs = [Trajectory.from_dict(d) for d in records]
            for t in trajs:
                writer.write(t)
            if on_progress:
                on_progress(len(trajs), trajs)
    wanted = set(task_ids)
    return [t for t in read_trajectories(out) if t.task_id in wanted]
