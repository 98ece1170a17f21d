"""What the viewer shows, read from a run folder as it is (no copy, no database).

Files are re-read when their size or mtime changes, so a page reload follows a run in progress.

Per-step reward-model scores come from two places:
- stored: best-of-n result files hold every candidate's per-step scores under each RM
  (`meta.search.candidates`), and a beam result holds its own RM's scores of the path it chose;
- computed on demand: where a file stores none (collected trajectories, greedy, other RMs on a beam
  path), the run's trained PRMs (`prm/<name>/`) score the trajectory when a page asks, and the result
  is cached in memory (keyed by the PRM's weights file and the trajectory's file), so nothing is
  written into the run folder.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentprm.report.layout import ordered
from agentprm.trajectory import Trajectory, iter_jsonl
from agentprm.view.paths import RunPaths

# Display order of the reward models and labels the paper compares (any other name follows).
LABEL_ORDER = ("td-gae", "mc", "pvm", "orm")


# -- file reading with a change check ------------------------------------------------------------------

_lock = threading.Lock()
_file_cache: dict[Path, tuple[tuple[int, int], Any]] = {}


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_size, st.st_mtime_ns)


def read_cached(path: Path, parse) -> Any:
    """`parse(path)`, re-run only when the file changed since the last read (None when it is absent)."""
    stamp = _stamp(path)
    if stamp is None:
        return None
    with _lock:
        hit = _file_cache.get(path)
        if hit and hit[0] == stamp:
            return hit[1]
    value = parse(path)
    with _lock:
        _file_cache[path] = (stamp, value)
    return value


def _records(path: Path) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


def _trajectories(path: Path) -> list[Trajectory]:
    # A later record with the same id replaces the earlier one (best-of-n resampling writes a new set).
    by_id = {}
    for d in read_cached(path, _records) or []:
        t = Trajectory.from_dict(d)
        by_id[t.id] = t
    return list(by_id.values())


# -- sources: the trajectory files of a run ------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One trajectory file of the run."""

    rel: str  # path relative to the run folder: the source's id in URLs
    kind: str  # collected | greedy | samples | beam
    split: str  # train | test
    env: str = ""
    rm: str | None = None  # beam: the RM that guided it
    budget: str = ""

    @property
    def title(self) -> str:
        if self.kind == "collected":
            return "collected (train)"
        if self.kind == "samples":
            return f"best-of-{self.budget} candidates ({self.env})"
        if self.kind == "beam":
            return f"beam @{self.budget} under {self.rm} ({self.env})"
        return f"greedy ({self.env})"


@dataclass
class StepView:
    t: int
    observation: str
    output: str
    action: str
    reward: float
    done: bool
    env_error: str | None
    series: dict[str, float | None]  # "score:agentprm" / "label:td-gae" -> value at this step
    spread: float | None = None  # max - min of the series at this step
    disagree: bool = False  # among the steps where the series disagree most


@dataclass
class TrajectoryView:
    run: int
    source: Source
    traj: Trajectory
    steps: list[StepView]
    score_names: list[str]  # RMs with scores
    label_names: list[str]
    computed: list[str]  # RMs whose scores were computed here (not read from a file)
    score_errors: dict[str, str] = field(default_factory=dict)
    lo: float = 0.0
    hi: float = 1.0


class Run:
    """One run folder, read on every request (cheaply: parsed files are cached until they change)."""

    def __init__(self, index: int, root: str | Path, scorer: ScoreCache):
        self.index = index
        self.paths = RunPaths(root)
        self.scorer = scorer

    @property
    def name(self) -> str:
        return self.paths.name

    def config(self) -> dict[str, Any]:
        import yaml

        data = read_cached(self.paths.config, lambda p: yaml.safe_load(p.read_text()) or {})
        return data if isinstance(data, dict) else {}

    def sources(self) -> list[Source]:
        p = self.paths
        out = []
        if p.trajectories.is_file():
            out.append(Source(p.rel(p.trajectories), "collected", "train", env=self.config().get("env", "")))
        for env in p.eval_envs():
            if p.greedy(env).is_file():
                out.append(Source(p.rel(p.greedy(env)), "greedy", "test", env))
            for budget, f in p.samples_by_budget(env).items():
                out.append(Source(p.rel(f), "samples", "test", env, budget=budget))
            for sf in p.search_files(env):
                if sf.strategy == "beam":
                    out.append(Source(p.rel(sf.path), "beam", "test", env, rm=sf.rm, budget=sf.budget))
        return out

    def source(self, rel: str) -> Source:
        for s in self.sources():
            if s.rel == rel:
                return s
        raise KeyError(rel)

    def trajectories(self, src: Source) -> list[Trajectory]:
        return _trajectories(self.paths.resolve(src.rel))

    def trajectory(self, src: Source, traj_id: str) -> Trajectory:
        for t in self.trajectories(src):
            if t.id == traj_id:
                return t
        raise KeyError(traj_id)

    def rm_names(self) -> list[str]:
        """Every RM with a trained PRM dir or a search result."""
        names = set(self.paths.prm_dirs())
        for env in self.paths.eval_envs():
            names |= {sf.rm for sf in self.paths.search_files(env)}
        return ordered(names)

    # -- labels and scores ------------------------------------------------------------------------------
    def labels(self) -> dict[str, dict[str, list[float | None]]]:
        """Label lists by method, then by trajectory id."""
        out = {}
        for method, path in self.paths.label_files().items():
            recs = read_cached(path, _records) or []
            out[method] = {r["trajectory_id"]: r["labels"] for r in recs}
        return out

    def label_settings(self) -> dict[str, dict[str, Any]]:
        out = {}
        for method, path in self.paths.label_files().items():
            recs = read_cached(path, _records) or []
            if recs:
                out[method] = recs[-1].get("settings", {})
        return out

    def _bon_records(self, env: str, budget: str) -> dict[str, dict[str, dict[str, Any]]]:
        """Best-of-n result records at `budget` by RM, then by task id."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for sf in self.paths.search_files(env):
            if sf.strategy == "bon" and sf.budget == budget:
                out[sf.rm] = {d["task_id"]: d for d in read_cached(sf.path, _records) or []}
        return out

    def stored_scores(self, src: Source, traj: Trajectory) -> dict[str, list[float]]:
        """Per-step scores by RM that result files already hold for this trajectory."""
        out: dict[str, list[float]] = {}
        if src.kind == "samples":
            j = traj.meta.get("sample_index")
            for rm, by_task in self._bon_records(src.env, src.budget).items():
                cands = by_task.get(traj.task_id, {}).get("meta", {}).get("search", {}).get("candidates", [])
                if isinstance(j, int) and j < len(cands) and len(cands[j]["scores"]) == traj.num_steps:
                    out[rm] = [float(v) for v in cands[j]["scores"]]
        elif src.kind == "beam" and src.rm:
            scores = traj.meta.get("search", {}).get("scores", [])
            if len(scores) == traj.num_steps:
                out[src.rm] = [float(v) for v in scores]
        return out

    def scores(
        self, src: Source, trajs: list[Trajectory], rms: list[str], compute: bool = True
    ) -> tuple[dict[str, dict[str, list[float]]], set[tuple[str, str]], dict[str, str]]:
        """Per-step scores {traj id: {rm: scores}} of `trajs` under `rms`: stored ones, then (with
        `compute`; without it, only what is cached) the run's PRMs for the rest. Also returns the (traj id, rm) pairs computed here and
        the RMs that failed to load or score (name -> error, shown on the page)."""
        out = {t.id: self.stored_scores(src, t) for t in trajs}
        computed: set[tuple[str, str]] = set()
        errors: dict[str, str] = {}
        prm_dirs = self.paths.prm_dirs()
        file = self.paths.resolve(src.rel)
        for rm in rms:
            todo = [t for t in trajs if rm not in out[t.id] and t.steps]
            if not todo or rm not in prm_dirs:
                continue
            if not compute:  # what earlier pages already computed
                for tid, v in self.scorer.peek(prm_dirs[rm], file, todo).items():
                    out[tid][rm] = v
                    computed.add((tid, rm))
                continue
            try:
                got = self.scorer.scores(prm_dirs[rm], file, todo)
            except Exception as e:  # a broken PRM dir is shown on the page, not a crash
                errors[rm] = f"{type(e).__name__}: {e}"
                continue
            for t in todo:
                out[t.id][rm] = got[t.id]
                computed.add((t.id, rm))
        return out, computed, errors

    def trajectory_view(self, src: Source, traj: Trajectory, top_k: int | None = None) -> TrajectoryView:
        rms = self.rm_names()
        scores, computed, errors = self.scores(src, [traj], rms)
        mine = scores[traj.id]
        # labels carried in the trajectory record itself, then the run's label files (which win)
        labels: dict[str, list[float | None]] = {
            **{m: list(v) for m, v in traj.labels.items()},
            **{m: v[traj.id] for m, v in self.labels().items() if traj.id in v},
        }
        # The TD-GAE target Algorithm 1 trains on is bootstrapped from AgentPRM's own Q (the label
        # file's is from the Q it was written with, usually 0): show the one from the current PRM too.
        if "agentprm" in mine:
            from agentprm.labels.td_gae import td_gae_targets

            s = self.label_settings().get("td-gae", {})
            q = mine["agentprm"]
            r = float(traj.success) if s.get("binary_outcome") else float(traj.reward)
            labels["td-gae (agentprm Q)"] = [
                float(v)
                for v in td_gae_targets(
                    q, r, gamma=s.get("gamma", 1.0), lam=s.get("lam", 0.95), bootstrap=s.get("bootstrap", "literal")
                )
            ]
        score_names = ordered(mine)
        label_names = ordered(labels, LABEL_ORDER)
        steps = []
        for st in traj.steps:
            series: dict[str, float | None] = {}
            for rm in score_names:
                series[f"score:{rm}"] = mine[rm][st.t] if st.t < len(mine[rm]) else None
            for m in label_names:
                v = labels[m][st.t] if st.t < len(labels[m]) else None
                series[f"label:{m}"] = None if v is None else float(v)
            steps.append(StepView(st.t, st.observation, st.output, st.action, st.reward, st.done, st.env_error, series))
        mark_disagreement(steps, top_k)
        vals = [v for s in steps for v in s.series.values() if v is not None and math.isfinite(v)]
        return TrajectoryView(
            self.index,
            src,
            traj,
            steps,
            score_names,
            label_names,
            sorted(rm for (_, rm) in computed),
            errors,
            lo=min([0.0, *vals]),
            hi=max([1.0, *vals]),
        )

    # -- best-of-n tasks --------------------------------------------------------------------------------
    def bon_task(self, src: Source, task_id: str) -> dict[str, Any]:
        """The N candidates of one task, each RM's scores, ranking and pick, and whether it succeeded."""
        cands = sorted(
            (t for t in self.trajectories(src) if t.task_id == task_id), key=lambda t: t.meta.get("sample_index", 0)
        )
        per_rm = {}
        for rm, by_task in self._bon_records(src.env, src.budget).items():
            rec = by_task.get(task_id)
            if rec is None:
                continue
            s = rec["meta"]["search"]
            stored = s.get("candidates", [])
            agg = s.get("aggregation", "last")
            from agentprm.search.best_of_n import aggregate

            values = [aggregate(c["scores"], agg) for c in stored]
            order = sorted(range(len(values)), key=lambda i: (-values[i], i))
            rank = {i: k + 1 for k, i in enumerate(order)}
            chosen = s.get("chosen")
            per_rm[rm] = {
                "values": values,
                "rank": rank,
                "chosen": chosen,
                "aggregation": agg,
                "picked_success": bool(chosen is not None and chosen < len(stored) and stored[chosen]["success"]),
            }
        return {
            "candidates": cands,
            "rms": {rm: per_rm[rm] for rm in ordered(per_rm)},
            "any_success": any(t.success for t in cands),
        }

    def bon_tasks(self, src: Source) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.trajectories(src):
            seen.setdefault(t.task_id)
        return list(seen)

    # -- the run ----------------------------------------------------------------------------------------
    def stages(self) -> list[dict[str, Any]]:
        """Every pipeline stage with its status (done / running / pending) and time, from the pipeline's
        own completeness checks and its stage log."""
        from agentprm.view.stages import stage_table

        return stage_table(self.paths)

    def report_html(self) -> str | None:
        if not self.paths.report.is_file():
            return None
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark").enable("table")
        html = md.render(self.paths.report.read_text(encoding="utf-8"))
        # Plots are linked relative to the report; serve them from the run's files route.
        return html.replace('src="plots/', f'src="/run/{self.index}/file/plots/')

    def tensorboard_runs(self) -> list[dict[str, Any]]:
        """Every TensorBoard log dir in the run folder with its scalar curves."""
        from agentprm.tracking import read_scalars

        out: list[dict[str, Any]] = []
        for d in self.paths.event_dirs():
            name = self.paths.rel(d)
            try:
                scalars = read_scalars(d)
            except Exception as e:  # a torn event file of a training in progress: say so
                out.append({"name": name, "dir": str(d), "error": f"{type(e).__name__}: {e}", "scalars": {}})
                continue
            out.append({"name": name, "dir": str(d), "scalars": scalars, "error": None})
        return out


def mark_disagreement(steps: list[StepView], top_k: int | None = None) -> None:
    """Spread (max - min over every score and label) per step; the `top_k` steps with the largest
    non-zero spread are marked (default: a fifth of the steps, at least one)."""
    for s in steps:
        vals = [v for v in s.series.values() if v is not None and math.isfinite(v)]
        s.spread = (max(vals) - min(vals)) if len(vals) >= 2 else None
    k = top_k if top_k is not None else max(1, math.ceil(len(steps) / 5))
    ranked = sorted((s for s in steps if s.spread), key=lambda s: -(s.spread or 0.0))
    for s in ranked[:k]:
        s.disagree = True


# -- scoring on demand ---------------------------------------------------------------------------------


class ScoreCache:
    """The run's PRMs, loaded once each, and their per-step scores by (PRM, file, trajectory).

    An entry is reused while the PRM's weights and the trajectory's file are unchanged (a PRM retrained
    in place, or a file rewritten, is scored again)."""

    def __init__(self, device: str | None = None):
        self.device = device
        self._models: dict[Path, tuple[tuple[int, int] | None, Any]] = {}
        self._scores: dict[tuple[Any, ...], list[float]] = {}
        self._lock = threading.Lock()  # one scoring at a time: the CPU is the bottleneck anyway
        self.calls = 0  # number of trajectories scored (tests check the cache)

    @staticmethod
    def _key(prm_dir: Path, file: Path, traj_id: str) -> tuple[Any, ...]:
        return (prm_dir, _stamp(prm_dir / "value_head.safetensors"), file, _stamp(file), traj_id)

    def _model(self, prm_dir: Path):
        stamp = _stamp(prm_dir / "value_head.safetensors")
        hit = self._models.get(prm_dir)
        if hit and hit[0] == stamp:
            return hit[1]
        from agentprm.prm.model import PRMScorer

        model = PRMScorer.load(prm_dir, device=self.device, name=prm_dir.name)
        self._models[prm_dir] = (stamp, model)
        return model

    def peek(self, prm_dir: Path, file: Path, trajs: list[Trajectory]) -> dict[str, list[float]]:
        """The scores already computed (no model call)."""
        got = {t.id: self._scores.get(self._key(prm_dir, file, t.id)) for t in trajs}
        return {k: v for k, v in got.items() if v is not None}

    def scores(self, prm_dir: Path, file: Path, trajs: list[Trajectory]) -> dict[str, list[float]]:
        from agentprm.conversation import trajectory_messages

        with self._lock:
            todo = [t for t in trajs if self._key(prm_dir, file, t.id) not in self._scores]
            if todo:
                got = self._model(prm_dir).score([trajectory_messages(t) for t in todo])
                self.calls += len(todo)
                for t, s in zip(todo, got, strict=True):
                    self._scores[self._key(prm_dir, file, t.id)] = [float(v) for v in s.scores]
            return {t.id: self._scores[self._key(prm_dir, file, t.id)] for t in trajs}


# -- the trajectories table ----------------------------------------------------------------------------


@dataclass
class Filters:
    split: str = ""
    task: str = ""
    status: str = ""
    success: str = ""  # "" | "yes" | "no"
    source: str = ""  # a source's rel path
    sort: str = ""  # "" | "reward" | "steps" | an RM name (its last-step score)
    desc: bool = True

    def keep(self, src: Source, t: Trajectory) -> bool:
        return (
            (not self.split or src.split == self.split)
            and (not self.task or t.task_id == self.task)
            and (not self.status or t.status == self.status)
            and (not self.source or src.rel == self.source)
            and (not self.success or t.success == (self.success == "yes"))
        )


@dataclass
class Row:
    source: Source
    traj: Trajectory
    scores: dict[str, float | None]  # last-step score by RM (None: not known yet)


def table(run: Run, f: Filters) -> tuple[list[Row], dict[str, Any]]:
    """The filtered, sorted rows and the choices each filter offers. Sorting by an RM scores every
    filtered row with it (stored scores first; the rest computed once and cached)."""
    rms = run.rm_names()
    rows: list[Row] = []
    choices: dict[str, set[str]] = {"task": set(), "status": set(), "split": set()}
    errors: dict[str, str] = {}
    for src in run.sources():
        trajs = run.trajectories(src)
        for t in trajs:
            choices["task"].add(t.task_id)
            choices["status"].add(t.status)
            choices["split"].add(src.split)
        kept = [t for t in trajs if f.keep(src, t)]
        if not kept:
            continue
        scores, _, errs = run.scores(src, kept, [f.sort] if f.sort in rms else [], compute=True)
        if f.sort not in rms:  # without a sort by an RM, show what is stored or cached only
            scores, _, errs = run.scores(src, kept, rms, compute=False)
        else:
            cached, _, _ = run.scores(src, kept, rms, compute=False)
            for tid, by_rm in cached.items():
                scores[tid] = {**by_rm, **scores[tid]}
        errors.update(errs)
        for t in kept:
            rows.append(Row(src, t, {rm: (scores[t.id][rm][-1] if scores[t.id].get(rm) else None) for rm in rms}))
    if f.sort:

        def key(r: Row):
            v: float | None
            if f.sort == "reward":
                v = r.traj.reward
            elif f.sort == "steps":
                v = r.traj.num_steps
            else:
                v = r.scores.get(f.sort)
            return (v is not None, v if v is not None else 0.0)  # unknown scores go last

        rows.sort(key=key, reverse=f.desc)
        if not f.desc:  # ascending: still unknown last
            rows.sort(key=lambda r: key(r)[0] is False)
    return rows, {"choices": {k: sorted(v) for k, v in choices.items()}, "rms": rms, "errors": errors}
