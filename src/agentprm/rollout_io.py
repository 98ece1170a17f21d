"""Resume support shared by every job that writes trajectories: what an output file already holds."""

from __future__ import annotations

import os

from agentprm.trajectory import iter_jsonl


def done_task_ids(path: str | os.PathLike) -> set[str]:
    """Task ids with at least one complete trajectory in `path` (missing file: none)."""
    if not os.path.exists(path):
        return set()
    return {d["task_id"] for d in iter_jsonl(path)}


def done_ids(path: str | os.PathLike) -> set[str]:
    """Ids of the complete trajectories in `path` (missing file: none): resume by episode, not by count."""
    if not os.path.exists(path):
        return set()
    return {d["id"] for d in iter_jsonl(path)}
