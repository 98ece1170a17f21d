"""The one data model that flows from env to table: `Step` and `Trajectory`, plus their storage.

Storage is JSONL, one trajectory a line, appended and flushed per line. A torn last line (a writer
killed mid-write) is skipped on read, so a kill -9 loses at most the trajectory in flight.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from agentprm.errors import BadFileError

SCHEMA_VERSION = 1

# Why an episode ended. `env_error` / `policy_error` are data, never silently reward 0.
STATUSES = ("done", "max_rounds", "env_error", "policy_error", "running")


@dataclass
class Step:
    """One agent turn t: the observation the agent saw (o_t), what it wrote (a_t), what the env said."""

    t: int
    observation: str  # the observation shown before this turn (o_t)
    output: str  # raw model output: thought + action
    action: str  # parsed action sent to the env
    reward: float = 0.0
    done: bool = False
    env_error: str | None = None
    prompt_tokens: int = 0
    generated_tokens: int = 0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Compute:
    """What a trajectory (or a search result) cost: the paper's compute units."""

    policy_prompt_tokens: int = 0
    policy_generated_tokens: int = 0
    prm_tokens: int = 0
    env_steps: int = 0

    def __iadd__(self, other: Compute) -> Compute:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


@dataclass
class Trajectory:
    id: str
    env: str
    task_id: str
    system_prompt: str
    first_observation: str
    steps: list[Step] = field(default_factory=list)
    policy: str = ""
    temperature: float | None = None
    seed: int | None = None
    reward: float = 0.0  # outcome reward r(u, tau)
    success: bool = False
    status: str = "running"
    final_observation: str = ""  # what the env said after the last action
    compute: Compute = field(default_factory=Compute)
    labels: dict[str, list[float]] = field(default_factory=dict)  # per-step labels by method name
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"group": "GoToRedBall"} for coverage tables
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def begin(cls, env: Any, task_id: str, first_observation: str = "", **fields_: Any) -> Trajectory:
        """A new, empty episode of `env` on `task_id` (env name and system prompt taken from the env)."""
        return cls(
            env=env.name,
            task_id=task_id,
            system_prompt=env.system_prompt,
            first_observation=first_observation,
            **fields_,
        )

    # -- derived -------------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return len(self.steps)

    def observations(self) -> list[str]:
        """o_0..o_T: the observation shown before each step."""
        return [s.observation for s in self.steps]

    # -- (de)serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        version = d.get("schema_version", SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise ValueError(f"trajectory schema {version} is newer than this agentprm ({SCHEMA_VERSION}): upgrade")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["steps"] = [Step(**s) for s in d.get("steps", [])]
        kwargs["compute"] = Compute(**d.get("compute", {}))
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


# -- JSONL storage ----------------------------------------------------------------------------------


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file; a torn (unparseable, unterminated) last line is ignored."""
    # Line by line: a resumed 10k-trajectory collect reads its file for the ids done, and the whole text
    # plus its split lines would sit in memory at once (twice the file) while the set is built.
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                if not fh.read().strip():
                    return  # torn write of the record in flight (the last line): drop it
                # bad input a user can fix (a resumed writer must not append past it), so one line, exit 2
                raise BadFileError(
                    f"{path}: line {i + 1} is not valid JSON (not a torn last line); repair or delete that line"
                ) from None
            yield obj


def read_trajectories(path: str | os.PathLike) -> list[Trajectory]:
    return [Trajectory.from_dict(d) for d in iter_jsonl(path)]


class JsonlWriter:
    """Append-only JSONL writer, fsynced per record, that first repairs a torn last line.

    A record is written whole or not at all: unbuffered, and a failed write (a full disk) is cut back to
    the record's start before the error is raised (`agentprm.disk.DiskFullError` for a full disk), so no
    half record waits in a buffer or on disk for a rerun to trust."""

    def __init__(self, path: str | os.PathLike):
        from agentprm.disk import writing

        self.path = Path(path)
        with writing(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _truncate_torn_tail(self.path)
            self._fh = open(self.path, "ab", buffering=0)

    def write(self, record: Trajectory | dict[str, Any]) -> None:
        from agentprm.disk import writing

        line = record.to_json() if isinstance(record, Trajectory) else json.dumps(record, ensure_ascii=False)
        data = memoryview((line + "\n").encode("utf-8"))
        start = self._fh.seek(0, os.SEEK_END)

        def cut_back() -> None:
            self._fh.truncate(start)

        with writing(self.path, cleanup=cut_back):
            while data:  # a raw write may take part of the bytes
                data = data[self._fh.write(data) :]
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate_torn_tail(path: Path) -> None:
    """Cut a final line without its newline, so appending after a crash does not glue two records."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1  # 0 when the only line is torn
        fh.truncate(cut)


def write_trajectories(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> None:
    with JsonlWriter(path) as w:
        for traj in trajectories:
            w.write(traj)


# -- exports ------------------------------------------------------------------------------------------


def export_parquet(trajectories: Iterable[Trajectory], path: str | os.PathLike) -> None:
    """One row per step (flat, analysis-friendly), trajectory fields repeated on each row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for traj in trajectories:
        for s in traj.steps:
            rows.append(
                {
                    "trajectory_id": traj.id,
                    "env": traj.env,
                    "task_id": traj.task_id,
                    "policy": traj.policy,
                    "outcome_reward": traj.reward,
                    "success": traj.success,
                    "status": traj.status,
                    "t": s.t,
                    "observation": s.observation,
                    "output": s.output,
                    "action": s.action,
                    "reward": s.reward,
                    "done": s.done,
                    "env_error": s.env_error,
                    "prompt_tokens": s.prompt_tokens,
                    "generated_tokens": s.generated_tokens,
                    **{f"label_{k}": v[s.t] if s.t < len(v) else None for k, v in traj.labels.items()},
                }
            )
    pq.write_table(pa.Table.from_pylist(rows), str(path))
