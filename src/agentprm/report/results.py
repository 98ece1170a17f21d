"""The report's typed results, built once per env from a run folder: what every section, claim and plot reads.

A `Measure` is one method in one setting (greedy, an RM's best-of-N at N, an RM's beam at NxM, the oracle at
N) as per-task values (the env's metric × 100, keyed by task id), so every difference can be paired over
the tasks both sides have (`agentprm.stats.paired_bootstrap`). Nothing here renders or plots.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentprm.labels.outcome import label_method, metric_value, outcome_trusted
from agentprm.pipeline_config import MC_LA_RM
from agentprm.report.layout import EvalFile, RunFolder, RunSet, ordered
from agentprm.search.best_of_n import Candidate, aggregate, budgets_upto, candidates_of, select
from agentprm.search.budget import Budget
from agentprm.search.efficiency import Ratio, efficiency_ratios, mean_curve
from agentprm.stats import PairedDiff, auroc, grouped_auroc, paired_bootstrap

TABLE1_RMS = ("orm", "pvm", "agentprm")
BASELINES = ("pvm", "orm", "random")  # what AgentPRM is compared against under best-of-N
# Table 3's MC-trained PRMs, each with what it trains on: the same MC labels, without and with L_A (§9 item
# 12). AgentPRM trains with L_A, so TD vs `mc-la` isolates the labels; `mc` is the paper's literal MC.
MC_RMS = {"mc": "L_Q only, the paper's MC", MC_LA_RM: "L_Q + β·L_A, as AgentPRM"}


def metric_of(env: str) -> str:
    """ "success" or "reward" (BabyAI's metric is mean reward), from the env registry."""
    from agentprm.envs import REGISTRY

    spec = REGISTRY.get(env)
    return spec.metric if spec is not None else "success"


@dataclass
class Measure:
    """One method in one setting: per-task values (metric × 100) and the file they came from."""

    what: str  # e.g. "agentprm BoN@16", "greedy SFT", "pvm beam @4x4"
    values: dict[str, float]
    source: EvalFile | None = None

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values()) if self.values else float("nan")

    @property
    def tasks(self) -> int:
        return len(self.values)


def compare(a: Measure, b: Measure, seed: int = 0) -> PairedDiff | None:
    """a − b over the tasks both have, with its 95% paired-bootstrap interval."""
    return paired_bootstrap(a.values, b.values, seed=seed)


@dataclass
class StepScores:
    """An RM's step scores on the steps of successful and of failed best-of-N candidates (Fig. 7)."""

    ok: list[float]
    bad: list[float]
    source: EvalFile
    # per task: (trajectory scores of its successful candidates, of its failed ones), under the search's
    # aggregation: what best-of-N compares
    per_task: list[tuple[list[float], list[float]]] = field(default_factory=list)

    @property
    def auc(self) -> float:
        return auroc(self.ok, self.bad)

    @property
    def within_task_auc(self) -> float:
        return grouped_auroc(self.per_task)


@dataclass
class EnvResults:
    env: str
    metric: str  # "success" | "reward"
    root: Path  # the run folder holding this env's results
    greedy: Measure | None = None
    rft: Measure | None = None  # greedy decoding of the RFT policy (SFT trained further on its own successes)
    bon: dict[str, dict[int, Measure]] = field(default_factory=dict)  # rm -> N -> selected candidate's value
    oracle: dict[int, Measure] = field(default_factory=dict)  # N -> best of the first N (pass@N for success)
    beam: dict[str, dict[Budget, Measure]] = field(default_factory=dict)  # rm -> NxM -> value
    scores: dict[str, StepScores] = field(default_factory=dict)
    label_tokens: dict[str, int] = field(default_factory=dict)  # label method -> sampled tokens on this env
    errors: int = 0  # results (chosen trajectories) that ended in env_error / policy_error

    def curve(self, rm: str) -> dict[int, float]:
        return {n: m.mean for n, m in self.bon.get(rm, {}).items()}

    def curves(self) -> dict[str, dict[int, float]]:
        return {rm: self.curve(rm) for rm in self.bon}

    def oracle_curve(self) -> dict[int, float]:
        return {n: m.mean for n, m in self.oracle.items()}

    def beams(self) -> list[Budget]:
        return sorted({b for per in self.beam.values() for b in per})

    def rms(self) -> list[str]:
        return ordered(set(self.bon) | set(self.beam))

    def efficiency(self) -> dict[str, list[Ratio]]:
        """AgentPRM's best-of-N compute-efficiency ratio against every other RM's curve."""
        if "agentprm" not in self.bon:
            return {}
        agent = self.curve("agentprm")
        return {b: efficiency_ratios(agent, self.curve(b)) for b in self.bon if b not in ("agentprm",)}

    def sources(self) -> list[EvalFile]:
        out: list[EvalFile | None] = [m.source for m in (self.greedy, self.rft) if m is not None]
        out += [next(iter(per.values())).source for per in self.bon.values() if per]
        out += [m.source for per in self.beam.values() for m in per.values()]
        return [f for f in out if f is not None]


def oracle_value(cands: Sequence[Candidate], metric: str) -> float:
    """The best of these candidates under `metric`: any success (pass@N) or the highest reward."""
    return max(metric_value(c, metric) for c in cands)


def aggregation_of(f: EvalFile) -> str:
    """How the best-of-n run that wrote `f` made a trajectory's score from its step scores."""
    return str(f.records[0].meta.get("search", {}).get("aggregation", "last")) if f.records else "last"


def bon_measures(f: EvalFile, metric: str, rm: str) -> tuple[dict[int, Measure], dict[int, Measure]]:
    """Per-task best-of-N values at N = 1, 2, 4, ... up to the file's budget (each N selects among the first
    N candidates, as `bon_curve`) and the oracle's at the same budgets."""
    groups = {t.task_id: candidates_of(t) for t in f.records}
    groups = {k: g for k, g in groups.items() if g}
    if not groups:
        return {}, {}
    n_max = min(len(g) for g in groups.values())
    agg = aggregation_of(f)
    chosen: dict[int, Measure] = {}
    oracle: dict[int, Measure] = {}
    for n in budgets_upto(n_max):
        chosen[n] = Measure(
            f"{rm} BoN@{n}", {k: 100.0 * metric_value(g[select(g, n, agg)], metric) for k, g in groups.items()}, f
        )
        oracle[n] = Measure(f"oracle@{n}", {k: 100.0 * oracle_value(g[:n], metric) for k, g in groups.items()}, f)
    return chosen, oracle


def file_measure(f: EvalFile, metric: str, what: str) -> Measure:
    return Measure(what, {t.task_id: 100.0 * metric_value(t, metric) for t in f.records}, f)


def label_cost(run: RunFolder | RunSet) -> dict[str, dict[str, int]]:
    """Sampled tokens each label method spent, per env, from `agentprm label`'s records (`sampled_tokens`:
    the trajectory's own tokens for TD/PVM/ORM, plus the rollouts for MC). For a RunSet, each env's cost
    comes from the label files of the folder that holds that env's results."""
    from agentprm.labels.store import read_labels

    if isinstance(run, RunSet):
        cost: dict[str, dict[str, int]] = {}
        for folder in run.folders:
            for method, per_env in label_cost(folder).items():
                for env, tokens in per_env.items():
                    if env in folder.envs():
                        cost.setdefault(method, {})[env] = tokens
        return cost
    cost = {}
    for method, path in run.label_files().items():
        for rec in read_labels(path).values():
            cost.setdefault(method, {}).setdefault(rec.env, 0)
            cost[method][rec.env] += int(rec.sampled_tokens)
    return cost


def env_results(run: RunSet, env: str, cost: Mapping[str, Mapping[str, int]] | None = None) -> EnvResults:
    """Everything the report says about `env`, read once from the folder that holds it."""
    metric = metric_of(env)
    res = EnvResults(env, metric, run.folder_of(env).root)
    if g := run.find(env, "greedy"):
        res.greedy = file_measure(g[0], metric, "greedy SFT")
    if g := run.find(env, "greedy", "rft"):
        res.rft = file_measure(g[0], metric, "greedy RFT")
    oracle_from = None
    for rm in [r for r in run.rms(env) if r != "rft"]:
        f = run.largest_bon(env, rm)
        if f is not None:
            chosen, oracle = bon_measures(f, metric, rm)
            if chosen:
                res.bon[rm] = chosen
                if oracle_from is None or rm == "agentprm":  # RMs share samples; prefer AgentPRM's file
                    res.oracle, oracle_from = oracle, rm
            ok: list[float] = []
            bad: list[float] = []
            per_task: list[tuple[list[float], list[float]]] = []
            how = aggregation_of(f)
            for t in f.records:
                good_t: list[float] = []
                bad_t: list[float] = []
                for c in candidates_of(t):
                    if outcome_trusted(c.status):
                        (ok if c.success else bad).extend(c.scores)
                        if c.scores:
                            (good_t if c.success else bad_t).append(aggregate(c.scores, how))
                per_task.append((good_t, bad_t))
            if ok or bad:
                res.scores[rm] = StepScores(ok, bad, f, per_task)
        for bf in sorted(run.find(env, "beam", rm), key=lambda e: e.budget):
            res.beam.setdefault(rm, {})[bf.budget] = file_measure(bf, metric, f"{rm} beam @{bf.budget}")
    used = [f for f in res.sources()]
    res.errors = sum(not outcome_trusted(t.status) for f in used for t in f.records)
    cost = label_cost(run) if cost is None else cost
    res.label_tokens = {m: per[env] for m, per in cost.items() if env in per}
    return res


@dataclass
class Results:
    """The whole report's data: per-env results and the curves averaged over envs."""

    envs: list[EnvResults]

    @property
    def names(self) -> list[str]:
        return [e.env for e in self.envs]

    def average(self) -> dict[str, dict[int, float]]:
        return average_curves({e.env: e.curves() for e in self.envs if e.bon})

    def average_efficiency(self) -> dict[str, list[Ratio]]:
        avg = self.average()
        if "agentprm" not in avg:
            return {}
        return {b: efficiency_ratios(avg["agentprm"], c) for b, c in avg.items() if b != "agentprm"}


def average_curves(per_env: dict[str, dict[str, dict[int, float]]]) -> dict[str, dict[int, float]]:
    """Each RM's best-of-n curve averaged over envs (the paper's Fig. 1, upper right): the plain mean of the
    per-env curves (each env's metric × 100), on the budgets every env has, for the RMs every env has."""
    envs = [s for e, s in per_env.items() if e != "average"]
    if len(envs) < 2:
        return {}
    rms = [rm for rm in envs[0] if all(rm in s for s in envs)]
    return {rm: c for rm in rms if (c := mean_curve([s[rm] for s in envs]))}


@dataclass
class PRMTraining:
    """What one PRM of a run folder was trained on and for how long (from its `prm_config.json`)."""

    root: Path
    name: str
    objective: str
    beta: float | None
    mc_advantage_loss: bool | None  # an MC PRM trained with β·L_A too (None: not an MC PRM, or not recorded)
    items: int | None  # trajectories trained on
    epochs: int | None
    steps: int | None  # optimiser steps
    lr: float | None
    batch_size: int | None


def prm_trainings(run: RunSet) -> list[PRMTraining]:
    import json

    out = []
    for folder in run.folders:
        for cfg in sorted((folder.root / "prm").glob("*/prm_config.json")):
            try:
                d = json.loads(cfg.read_text())
            except ValueError:
                continue
            t = d.get("train") or {}
            objective = d.get("objective", t.get("objective", "?"))
            out.append(
                PRMTraining(
                    folder.root,
                    cfg.parent.name,
                    objective,
                    t.get("beta"),
                    t.get("mc_advantage_loss") if objective == "mc" else None,
                    t.get("items"),
                    t.get("epochs"),
                    t.get("steps"),
                    t.get("lr"),
                    t.get("batch_size"),
                )
            )
    return out


def build_results(run: RunSet) -> Results:
    cost = label_cost(run)
    return Results([env_results(run, env, cost) for env in run.envs()])


def td_label_method() -> str:
    """The label file AgentPRM trains on (Table 3's TD row)."""
    return label_method("agentprm") or "td-gae"
