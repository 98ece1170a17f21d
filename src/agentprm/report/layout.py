"""The run folders the report reads (paths: `agentprm.run_layout.RunLayout`, shared with the pipeline).

Every eval file is `agentprm search --out` output: one Trajectory a task with `meta.search`. `<rm>` is the
reward model's name; the report knows `agentprm`, `pvm`, `orm`, `mc` and `mc-la` (Table 3: MC labels with
L_Q only, and with L_Q + beta*L_A), `agentprm-beta0` (the L_A ablation) and `random`, and shows any other
name too. Label files are `agentprm label` output
(`agentprm.labels.store.LabelRecord`); their `sampled_tokens` is Table 3's label cost (the trajectory's
own tokens for TD labels, plus the rollouts for MC).

`RunSet` reads several run folders as one (`agentprm pipeline --env babyai` writes `runs/default-babyai`,
TextCraft `runs/default`, ...): each env's results come from the one folder that has them, so a combined
report can show every env and their average.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from agentprm.errors import UserError
from agentprm.pipeline_config import BETA0_RM, MC_LA_RM
from agentprm.run_layout import RunLayout
from agentprm.search.budget import Budget
from agentprm.trajectory import Trajectory, read_trajectories

KNOWN_RMS = ("agentprm", "pvm", "orm", "mc", MC_LA_RM, BETA0_RM, "random")
ABLATION_RM = BETA0_RM


def ordered(names: Iterable[str], order: Sequence[str] = KNOWN_RMS) -> list[str]:
    """`names` in `order` (the report's RM order by default), the ones it does not list after, sorted."""
    names = set(names)
    return [n for n in order if n in names] + sorted(names - set(order))


@dataclass(eq=False)  # identity: the report dedups the files it names
class EvalFile:
    env: str
    rm: str | None  # None for greedy
    strategy: str  # greedy | bon | beam
    budget: Budget  # 1 (greedy) | 16 | 4x4
    path: Path

    @cached_property
    def records(self) -> list[Trajectory]:
        return read_trajectories(self.path)

    def commands(self) -> list[str]:
        """The distinct commands (or configs, for library calls) that produced this file's records."""
        seen: list[str] = []
        for t in self.records:
            s = t.meta.get("search", {})
            cfg = s.get("config", {})
            shown = {
                "strategy": s.get("strategy"),
                "budget": s.get("budget"),
                "rm": s.get("rm"),
                **cfg.get("resolved", {}),
            }
            c = s.get("command") or "library call: " + " ".join(f"{k}={v}" for k, v in shown.items() if v is not None)
            if c not in seen:
                seen.append(c)
        return seen


def _has_records(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


@dataclass
class Excluded:
    """A result file the report does not use, and why."""

    path: Path
    why: str  # "partial: ..." | "stale: ..."
    command: str  # what completes or redoes it


def _expected_keys(root: Path) -> Callable[[str, str | None, Budget], str] | str:
    """The key each pipeline search output must have under the run folder's current config.yaml, or why it
    cannot be known."""
    from agentprm.pipeline_config import PipelineConfig
    from agentprm.stage_keys import StageKeys

    try:
        keys = StageKeys(PipelineConfig.load(RunLayout(root).config))
        return lambda strategy, rm, budget: keys.search_key(strategy, rm, budget)
    except Exception as e:  # noqa: BLE001 - any failure means the results cannot be checked; said in the report
        return f"its run folder's config.yaml cannot be read ({type(e).__name__}: {e})"


@dataclass
class RunFolder:
    root: Path
    evals: list[EvalFile] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)

    @classmethod
    def scan(cls, root: str | Path) -> RunFolder:
        """The results of a run folder the report may use: non-empty files that either carry no provenance
        (made by `agentprm search` by hand) or whose provenance says complete and matches the folder's
        current config.yaml. The others are listed in `excluded` with the command that completes them."""
        from agentprm.stage_keys import Provenance

        root = Path(root)
        layout = RunLayout(root)
        evals, excluded = [], []
        expected: Callable[[str, str | None, Budget], str] | str | None = None
        command = f"agentprm pipeline {layout.config} --runs {root.parent} --name {root.name}"
        for r in layout.results():
            # An empty file is a search that has only started (the pipeline opens its output first): not a result.
            if not _has_records(r.path):
                continue
            prov = Provenance.read(layout.provenance(r.path))
            if prov is not None:
                if expected is None:
                    expected = _expected_keys(root)
                if not prov.complete:
                    excluded.append(Excluded(r.path, "partial: its search did not finish", prov.command or command))
                    continue
                if isinstance(expected, str):
                    excluded.append(Excluded(r.path, f"unverifiable: {expected}", command))
                    continue
                if prov.key != expected(r.strategy, r.rm, r.budget):
                    excluded.append(
                        Excluded(
                            r.path,
                            "stale: made under settings that differ from config.yaml (a stage it depends on changed)",
                            command,
                        )
                    )
                    continue
            evals.append(EvalFile(r.env, r.rm, r.strategy, r.budget, r.path))
        return cls(root, evals, excluded)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.root)

    @property
    def config_path(self) -> Path:
        return self.layout.config

    def envs(self) -> list[str]:
        return sorted({e.env for e in self.evals})

    def rms(self, env: str | None = None) -> list[str]:
        return ordered(e.rm for e in self.evals if e.rm and (env is None or e.env == env))

    def find(self, env: str, strategy: str, rm: str | None = None, budget: str | None = None) -> list[EvalFile]:
        return [
            e
            for e in self.evals
            if e.env == env
            and e.strategy == strategy
            and e.rm == rm
            and (budget is None or str(e.budget) == str(budget))
        ]

    def largest_bon(self, env: str, rm: str) -> EvalFile | None:
        files = self.find(env, "bon", rm)
        return max(files, key=lambda e: e.budget) if files else None

    def label_files(self) -> dict[str, Path]:
        return {p.stem: p for p in sorted(self.layout.labels_dir.glob("*.jsonl"))}


@dataclass
class RunSet:
    """Several run folders read as one. Every env's results come from exactly one folder: an env found in
    two folders is an error, because the report could not tell which results to show."""

    folders: list[RunFolder]

    @classmethod
    def scan(cls, roots: Sequence[str | Path]) -> RunSet:
        unique = {Path(r).resolve(): Path(r) for r in reversed(list(roots))}  # a folder named twice counts once
        folders = [RunFolder.scan(r) for r in reversed(list(unique.values()))]
        owner: dict[str, RunFolder] = {}
        for f in folders:
            for env in f.envs():
                if env in owner:
                    raise UserError(
                        f"env {env!r} has results in two run folders, {owner[env].root} and {f.root}; "
                        "give each env's run folder once (or move one aside)"
                    )
                owner[env] = f
        return cls(folders)

    @property
    def evals(self) -> list[EvalFile]:
        return [e for f in self.folders for e in f.evals]

    @property
    def excluded(self) -> list[Excluded]:
        return [x for f in self.folders for x in f.excluded]

    def envs(self) -> list[str]:
        return sorted({env for f in self.folders for env in f.envs()})

    def folder_of(self, env: str) -> RunFolder:
        return next(f for f in self.folders if env in f.envs())

    def rms(self, env: str | None = None) -> list[str]:
        if env is not None:
            return self.folder_of(env).rms(env) if env in self.envs() else []
        return ordered(e.rm for e in self.evals if e.rm)

    def find(self, env: str, strategy: str, rm: str | None = None, budget: str | None = None) -> list[EvalFile]:
        return self.folder_of(env).find(env, strategy, rm, budget) if env in self.envs() else []

    def largest_bon(self, env: str, rm: str) -> EvalFile | None:
        return self.folder_of(env).largest_bon(env, rm) if env in self.envs() else None

    def label_files(self, env: str) -> dict[str, Path]:
        """The label files of the folder that holds `env`'s results (label cost is per env)."""
        return self.folder_of(env).label_files() if env in self.envs() else {}
