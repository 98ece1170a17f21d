"""Jobs over the rollout engine: `collect` (N samples per task, resumable) and `evaluate` (greedy).

Both write one trajectory per JSONL line as soon as it ends; a rerun skips the episode ids already in
the file, so a run killed with -9 finishes the rest and duplicates nothing. Episode `k` of task `u`
has id `u#k` and sampling seed `episode_seed(seed, u, k)`: its samples do not depend on the batch it
ran in, so a resumed run samples what the uninterrupted run would have.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agentprm.envs.base import Env
from agentprm.memory import HEAP_TRIM_MIB, HeapTrimmer
from agentprm.policy.base import Policy
from agentprm.rollout.engine import Episode, RolloutConfig, new_episode, run_episodes
from agentprm.rollout_io import done_ids
from agentprm.trajectory import JsonlWriter, Trajectory, iter_jsonl


def episode_id(task_id: str, k: int) -> str:
    return f"{task_id}#{k}"


def episode_seed(seed: int, task_id: str, k: int) -> int:
    from agentprm.policy.base import row_seed

    return row_seed(seed, zlib.crc32(episode_id(task_id, k).encode()))


@dataclass
class JobSummary:
    written: int = 0
    skipped: int = 0  # already in the output file
    successes: int = 0
    reward_sum: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    generated_tokens: int = 0
    prompt_tokens: int = 0

    def add(self, traj: Trajectory) -> None:
        self.written += 1
        self.successes += traj.success
        self.reward_sum += traj.reward
        self.statuses[traj.status] = self.statuses.get(traj.status, 0) + 1
        self.generated_tokens += traj.compute.policy_generated_tokens
        self.prompt_tokens += traj.compute.policy_prompt_tokens

    @property
    def success_rate(self) -> float:
        return self.successes / self.written if self.written else float("nan")

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.written if self.written else float("nan")


def rollout_episodes(
    policy: Policy,
    make_env: Callable[[], Env],
    pairs: list[tuple[str, int]],
    *,
    cfg: RolloutConfig,
    seed: int = 0,
) -> Iterator[Trajectory]:
    """Run episode `k` of task `u` for every `(u, k)` in `pairs` (batched), yielding each trajectory as it
    ends. What an episode samples depends only on (seed, u, k), so any split of `pairs` across calls or
    machines (`agentprm.scale`) gives the same trajectories."""
    free: list[Env] = []  # env instances are reused: building one can be costly (recipe parsing)

    def episodes() -> Iterator[Episode]:
        for u, k in pairs:
            env = free.pop() if free else make_env()
            yield new_episode(
                env,
                u,
                traj_id=episode_id(u, k),
                policy=getattr(policy, "name", ""),
                temperature=cfg.temperature,
                seed=episode_seed(seed, u, k) if cfg.temperature > 0 else None,
                meta={"sample": k},
            )

    for ep in run_episodes(policy, episodes(), cfg):
        if ep.traj.status != "env_error":  # a crashed env is not handed to the next episode
            free.append(ep.env)
        yield ep.traj


def todo_pairs(task_ids: list[str], n_per_task: int, out: str | Path) -> list[tuple[str, int]]:
    """The (task, sample) episodes of a job that `out` does not hold yet (resume)."""
    have = done_ids(out)
    return [(u, k) for u in task_ids for k in range(n_per_task) if episode_id(u, k) not in have]


def rollout_tasks(
    policy: Policy,
    make_env: Callable[[], Env],
    task_ids: list[str],
    out: str | Path,
    *,
    n_per_task: int = 1,
    cfg: RolloutConfig | None = None,
    seed: int = 0,
    on_done: Callable[[Trajectory, JobSummary], None] | None = None,
    heap_trim_mib: int = HEAP_TRIM_MIB,
) -> JobSummary:
    """Run `n_per_task` episodes of every task, appending each finished trajectory to `out`.

    Memory stays flat however many episodes run: each trajectory goes to disk as it ends, the policy's
    prefix store and buffer pool are bounded by bytes, and glibc's free heap is trimmed past
    `heap_trim_mib` MiB (`memory.HeapTrimmer`; 0: never)."""
    cfg = cfg or RolloutConfig()
    todo = todo_pairs(task_ids, n_per_task, out)
    summary = JobSummary(skipped=len(task_ids) * n_per_task - len(todo))
    trimmer = HeapTrimmer(heap_trim_mib)
    with JsonlWriter(out) as writer:
        for traj in rollout_episodes(policy, make_env, todo, cfg=cfg, seed=seed):
            writer.write(traj)
            summary.add(traj)
            trimmer.tick()
            if on_done:
                on_done(traj, summary)
    return summary


def pass_at_n(trajectories: Iterable[Trajectory]) -> float:
    """Share of tasks with at least one successful trajectory (oracle@N over what was sampled)."""
    return _solved_share((t.task_id, t.success) for t in trajectories)


def _solved_share(outcomes: Iterable[tuple[str, bool]]) -> float:
    """Share of the task ids with at least one True among their (task id, success) pairs; NaN if none."""
    by_task: dict[str, bool] = {}
    for task, ok in outcomes:
        by_task[task] = by_task.get(task, False) or ok
    return sum(by_task.values()) / len(by_task) if by_task else float("nan")


@dataclass
class FileSummary:
    trajectories: int = 0
    successes: int = 0
    reward_sum: float = 0.0
    errors: int = 0  # env_error or policy_error
    pass_at_n: float = float("nan")

    @property
    def success_rate(self) -> float:
        return self.successes / self.trajectories if self.trajectories else float("nan")

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.trajectories if self.trajectories else float("nan")


def summarize_file(path: str | Path) -> FileSummary:
    """Count, successes, rewards, errors and pass@N of a trajectory JSONL, read one record at a time (a
    10k-trajectory collect's closing line must not load every trajectory)."""
    out = FileSummary()
    outcomes: list[tuple[str, bool]] = []
    for d in iter_jsonl(path) if Path(path).exists() else ():
        ok = bool(d.get("success"))
        out.trajectories += 1
        out.successes += ok
        out.reward_sum += float(d.get("reward", 0.0))
        out.errors += d.get("status") in ("env_error", "policy_error")
        outcomes.append((d["task_id"], ok))
    out.pass_at_n = _solved_share(outcomes)
    return out
