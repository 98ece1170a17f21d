"""The pipeline's stages of a run folder: status from the pipeline's own completeness checks, times
from the stage log the pipeline appends to (`stages.jsonl`: one line when a stage starts, one when it
ends), so a run in progress shows which stage is running and for how long."""

from __future__ import annotations

import time
from typing import Any

from agentprm.trajectory import iter_jsonl
from agentprm.view.paths import RunPaths


def _log(paths: RunPaths) -> dict[str, dict[str, Any]]:
    """The latest start/end event per stage name."""
    out: dict[str, dict[str, Any]] = {}
    if not paths.stage_log.is_file():
        return out
    for ev in iter_jsonl(paths.stage_log):
        entry = out.setdefault(ev["stage"], {})
        if ev.get("event") == "start":
            entry.clear()
        entry[ev.get("event", "end")] = ev
    return out


def stage_table(paths: RunPaths) -> list[dict[str, Any]]:
    log = _log(paths)
    rows: list[dict[str, Any]] = []
    names: list[str] = []
    done: dict[str, bool] = {}
    error = None
    if paths.config.is_file():
        try:
            from agentprm.pipeline import Pipeline, PipelineConfig

            cfg = PipelineConfig.load(paths.config, name=paths.root.resolve().name)
            pipe = Pipeline(cfg, root=paths.root.resolve().parent, log=lambda _: None)
            for st in pipe.stages():
                names.append(st.name)
                done[st.name] = pipe.stage_status(st) in ("complete", "legacy")
            names.append("report")
            done["report"] = paths.report.is_file()
        except Exception as e:  # a config from another version: the log alone still shows times
            error = f"{type(e).__name__}: {e}"
    names += [n for n in log if n not in names]
    now = time.time()
    for n in names:
        ev = log.get(n, {})
        start, end = ev.get("start"), ev.get("end")
        if start and not end:
            status, seconds = "running", now - start["time"]
        elif n in done:
            status = "done" if done[n] else "pending"
            seconds = end.get("seconds") if end else None
        else:
            status, seconds = ("done" if end else "pending"), (end.get("seconds") if end else None)
        rows.append(
            {
                "stage": n,
                "status": status,
                "seconds": seconds,
                "summary": (end or {}).get("summary", ""),
                "skipped": bool(end and end.get("skipped")),
            }
        )
    if error:
        rows.append({"stage": "(config)", "status": "unreadable", "seconds": None, "summary": error, "skipped": False})
    return rows
