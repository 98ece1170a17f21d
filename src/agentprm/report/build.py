"""`write_report(run_dirs, out_dir)`: report.md with the paper's tables and plots from one or more run folders.

One folder (the pipeline's `runs/NAME`) gives that folder's report, written into it. Several folders (one a
env, as `agentprm pipeline --env babyai` writes them) give one combined report in `out_dir`: each env's
sections come from the folder that holds its results (`RunSet`), and (b), (c) and the claims add the
average over envs.

Sections: (a) Table 1 per env (greedy SFT; every RM under beam @NxM); (b) best-of-n curves per env and
averaged over envs; (c) compute-efficiency ratios of AgentPRM against the baselines; (d) Table 3 (TD vs
MC label cost and search success); (e) PRM score distributions on steps of successful and failed
trajectories; (f) the L_A ablation (beta = 0); then the paper's claims checked on these numbers, and
what was not run. Every table and figure names the files and commands that produced it. Nothing is
filled in: a missing piece is listed as "not run".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentprm.report.layout import ABLATION_RM, EvalFile, RunFolder, RunSet
from agentprm.search.best_of_n import CurvePoint, bon_curve, budgets_upto, candidates_of
from agentprm.search.efficiency import Ratio, efficiency_ratios, mean_curve
from agentprm.errors import UserError
from agentprm.prm.evaluate import auroc
from agentprm.trajectory import Trajectory

TABLE1_RMS = ("orm", "pvm", "agentprm")
PAPER_BEAMS = ("2x2", "4x4", "8x8")
TABLE3_BON = (8, 16, 32, 64)
TABLE3_BEAM = ("4x4", "8x8")


def metric_of(env: str) -> str:
    """"success" or "reward" (BabyAI's metric is mean reward), from the env registry."""
    from agentprm.envs import REGISTRY

    spec = REGISTRY.get(env)
    return spec.metric if spec is not None else "success"


def value(records: Sequence[Trajectory], metric: str) -> float:
    if not records:
        return float("nan")
    vals = [t.reward if metric == "reward" else float(t.success) for t in records]
    return 100.0 * sum(vals) / len(vals)


def _fmt(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:.1f}"


def _point_value(p: CurvePoint, metric: str, oracle: bool = False) -> float:
    if oracle:
        return 100.0 * (p.oracle_reward if metric == "reward" else p.oracle_success)
    return 100.0 * (p.reward if metric == "reward" else p.success)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


@dataclass
class _Ctx:
    run: RunSet
    out: Path  # the folder report.md is written to; links and paths are shown relative to it when inside
    plots: Path
    lines: list[str]
    not_run: list[str]

    def sources(self, files: Sequence[EvalFile]) -> None:
        """Name the files, the commands in their records and the config of the run folder they came from."""
        if not files:
            return
        self.lines.append("")
        for root in dict.fromkeys(self._root_of(f) for f in files):
            cfg = root / "config.yaml"
            where = f"run folder `{root}`, config " + (f"`{self.show(cfg)}`" if cfg.is_file() else "none (no config.yaml)")
            self.lines.append(f"Produced by ({where}):")
            for f in files:
                if self._root_of(f) == root:
                    cmds = "; ".join(f"`{c}`" for c in f.commands()) or "(empty file)"
                    self.lines.append(f"- `{self.show(f.path)}` ({len(f.records)} tasks): {cmds}")
        self.lines.append("")

    def _root_of(self, f: EvalFile) -> Path:
        return self.run.folder_of(f.env).root

    def show(self, p: Path) -> str:
        """`p` relative to the report's folder when it lies inside it (one-folder reports), else as given."""
        try:
            return str(p.relative_to(self.out))
        except ValueError:
            return str(p)

    def rel(self, p: Path) -> str:
        return str(p.relative_to(self.out))


def curves(run: RunFolder | RunSet, env: str) -> dict[str, tuple[EvalFile, list[CurvePoint]]]:
    """Each RM's best-of-n curve on `env` (budgets 1, 2, 4, ... up to its largest file)."""
    out = {}
    for rm in run.rms(env):
        f = run.largest_bon(env, rm)
        if f is None:
            continue
        groups = [candidates_of(t) for t in f.records]
        groups = [g for g in groups if g]
        if groups:
            n = min(len(g) for g in groups)
            out[rm] = (f, bon_curve(groups, budgets_upto(n), f.records[0].meta["search"].get("aggregation", "last")))
    return out


# -- sections -------------------------------------------------------------------------------------------


def _table1(ctx: _Ctx, env: str, metric: str) -> None:
    run = ctx.run
    ctx.lines += [f"### {env}", ""]
    greedy_files = run.find(env, "greedy")
    beams = sorted({e.budget for e in run.evals if e.env == env and e.strategy == "beam"}, key=lambda b: tuple(map(int, b.split("x"))))
    rms = [r for r in TABLE1_RMS if r in run.rms(env)] + [r for r in run.rms(env) if r not in TABLE1_RMS]
    header = ["method", "greedy", *(f"@{b}" for b in beams)]
    rows = []
    if greedy_files:
        rows.append(["SFT (greedy)", _fmt(value(greedy_files[0].records, metric)), *("" for _ in beams)])
    else:
        ctx.not_run.append(f"{env}: greedy SFT (`{ctx.show(run.folder_of(env).root / 'eval' / env / 'greedy.jsonl')}`)")
    used = list(greedy_files)
    for rm in rms:
        cells = []
        for b in beams:
            fs = run.find(env, "beam", rm, b)
            used += fs
            cells.append(_fmt(value(fs[0].records, metric)) if fs else "not run")
        if beams:
            rows.append([rm, "", *cells])
    for rm in TABLE1_RMS:
        for b in PAPER_BEAMS:
            if not run.find(env, "beam", rm, b):
                ctx.not_run.append(f"{env}: {rm} beam @{b} (`{ctx.show(run.folder_of(env).root / 'eval' / env / rm / f'beam_{b}.jsonl')}`)")
    if not rows:
        ctx.lines += ["not run", ""]
        return
    ctx.lines += _table(header, rows)
    errors = sum(t.status == "env_error" for f in used for t in f.records)
    ctx.lines += ["", f"Metric: {metric} × 100. Env errors among these results: {errors}."]
    ctx.sources(used)


def _plot_curves(path: Path, title: str, series: dict[str, dict[int, float]], oracle: dict[int, float] | None, greedy: float | None, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in series.items():
        ns = sorted(curve)
        ax.plot(ns, [curve[n] for n in ns], marker="o", label=name)
    if oracle:
        ns = sorted(oracle)
        ax.plot(ns, [oracle[n] for n in ns], linestyle="--", color="gray", label="oracle@N")
    if greedy is not None:
        ax.axhline(greedy, color="black", linestyle=":", label="greedy SFT")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (sampled trajectories)")
    ax.set_ylabel(f"{metric} × 100")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bon_section(ctx: _Ctx, metrics: dict[str, str]) -> dict[str, dict[str, dict[int, float]]]:
    run = ctx.run
    per_env: dict[str, dict[str, dict[int, float]]] = {}
    oracles: dict[str, dict[int, float]] = {}
    greedys: dict[str, float | None] = {}
    for env in run.envs():
        cs = curves(run, env)
        if not cs:
            ctx.not_run.append(f"{env}: best-of-n (`eval/{env}/<rm>/bon_<N>.jsonl`)")
            continue
        metric = metrics[env]
        series = {rm: {p.n: _point_value(p, metric) for p in pts} for rm, (_, pts) in cs.items()}
        per_env[env] = series
        first = next(iter(cs.values()))[1]
        oracle = {p.n: _point_value(p, metric, oracle=True) for p in first}
        greedy = run.find(env, "greedy")
        g = value(greedy[0].records, metric) if greedy else None
        oracles[env], greedys[env] = oracle, g
        png = ctx.plots / f"bon_{env}.png"
        _plot_curves(png, f"best-of-N, {env}", series, oracle, g, metric)
        budgets = sorted({n for s in series.values() for n in s})
        ctx.lines += [f"### {env}", "", f"![best-of-N {env}]({ctx.rel(png)})", ""]
        rows = [[rm, *(_fmt(s.get(n)) for n in budgets)] for rm, s in series.items()]
        rows.append(["oracle@N", *(_fmt(oracle.get(n)) for n in budgets)])
        ctx.lines += _table(["RM", *(f"N={n}" for n in budgets)], rows)
        ctx.sources([f for f, _ in cs.values()])
    if len(per_env) > 1:
        _average_curves(ctx, per_env, oracles, greedys, metrics)
    elif len(run.envs()) > 1:
        ctx.not_run.append("best-of-n averaged over envs (needs best-of-n results in at least two envs)")
    return per_env


def average_curves(per_env: dict[str, dict[str, dict[int, float]]]) -> dict[str, dict[int, float]]:
    """Each RM's best-of-n curve averaged over envs (the paper's Fig. 1, upper right): the plain mean of the
    per-env curves (each env's metric × 100), on the budgets every env has, for the RMs every env has."""
    envs = [s for e, s in per_env.items() if e != "average"]
    if len(envs) < 2:
        return {}
    rms = [rm for rm in envs[0] if all(rm in s for s in envs)]
    return {rm: c for rm in rms if (c := mean_curve([s[rm] for s in envs]))}


def _average_curves(ctx: _Ctx, per_env: dict, oracles: dict[str, dict[int, float]], greedys: dict[str, float | None], metrics: dict[str, str]) -> None:
    envs = list(per_env)
    avg = average_curves(per_env)
    ctx.lines += ["### average over envs", ""]
    missing = sorted({rm for s in per_env.values() for rm in s} - set(avg))
    if not avg:
        ctx.lines += ["not run (no RM has best-of-n results in every env)", ""]
        ctx.not_run.append("best-of-n averaged over envs (needs one RM's best-of-n in every env)")
        return
    oracle = mean_curve(list(oracles.values())) if len(oracles) == len(envs) else None
    g = [greedys[e] for e in envs if greedys.get(e) is not None]
    greedy = sum(g) / len(g) if len(g) == len(envs) else None
    png = ctx.plots / "bon_average.png"
    _plot_curves(png, f"best-of-N, mean over {', '.join(envs)}", avg, oracle, greedy, "mean metric")
    per_env["average"] = avg
    budgets = sorted({n for c in avg.values() for n in c})
    rows = [[rm, *(_fmt(c.get(n)) for n in budgets)] for rm, c in avg.items()]
    if oracle:
        rows.append(["oracle@N", *(_fmt(oracle.get(n)) for n in budgets)])
    ctx.lines += [f"![best-of-N average]({ctx.rel(png)})", ""]
    ctx.lines += _table(["RM", *(f"N={n}" for n in budgets)], rows)
    kinds = ", ".join(f"{e}: {metrics[e]}" for e in envs)
    ctx.lines += [
        "",
        f"Plain mean over {len(envs)} envs of the per-env curves above (each env's own metric × 100; {kinds}), "
        "on the budgets every env has. Greedy line: mean of the envs' greedy SFT "
        + ("(every env has one)." if greedy is not None else "(not drawn: some env has no greedy result).")
        + (f" Not averaged (missing in some env): {', '.join(missing)}." if missing else "")
        + " Sources: the per-env files listed above.",
        "",
    ]


def mean_ratio(ratios: Sequence[Ratio]) -> tuple[float, bool]:
    """The plain mean of several envs' ratios at one budget, and whether it is only a lower bound (some env's
    baseline never reached AgentPRM's success: its ratio counts as its lower bound max/N). This is the
    alternative reading of the paper's "8× on average" (§9); the default, shown first, is the ratio of the
    env-averaged curves, as in its Fig. 1."""
    defined = [r for r in ratios if r.defined]  # an env where AgentPRM solved nothing has no ratio
    if not defined:
        return float("nan"), False
    vals = [r.lower_bound for r in defined]
    return sum(vals) / len(vals), any(r.value is None for r in defined)


def _efficiency_section(ctx: _Ctx, per_env: dict[str, dict[str, dict[int, float]]]) -> dict[str, dict[str, list[Ratio]]]:
    out: dict[str, dict[str, list[Ratio]]] = {}
    for env, series in per_env.items():
        if "agentprm" not in series:
            ctx.not_run.append(f"{env}: compute-efficiency ratio (needs agentprm best-of-n)")
            continue
        baselines = [b for b in series if b not in ("agentprm",)]
        if not baselines:
            continue
        agent = series["agentprm"]
        ctx.lines += [f"### {env}" if env != "average" else "### average over envs", ""]
        if env == "average":
            ctx.lines += ["On the curves averaged over envs (section b), as the paper's \"8× on average\" (Fig. 1).", ""]
        rows = []
        out[env] = {}
        for b in baselines:
            ratios = efficiency_ratios(agent, series[b])
            out[env][b] = ratios
            rows.append([b, *(str(r) for r in ratios)])
        ctx.lines += _table(["baseline", *(f"N={n}" for n in sorted(agent))], rows)
        ctx.lines.append("")
    envs = [e for e in out if e != "average"]
    if len(envs) > 1:
        # the alternative reading of "on average": the mean of the per-env ratios, not the ratio of the mean curves
        baselines = [b for b in out[envs[0]] if all(b in out[e] for e in envs)]
        budgets = sorted(set.intersection(*({r.n for r in out[e][baselines[0]]} for e in envs))) if baselines else []
        rows = []
        for b in baselines:
            cells = []
            for n in budgets:
                m, lower = mean_ratio([next(r for r in out[e][b] if r.n == n) for e in envs])
                cells.append("n/a" if math.isnan(m) else f"{'≥ ' if lower else ''}{m:.3g}x")
            rows.append([b, *cells])
        if rows:
            ctx.lines += ["### mean of the per-env ratios", ""]
            ctx.lines += _table(["baseline", *(f"N={n}" for n in budgets)], rows)
            ctx.lines += ["", f"Plain mean over {', '.join(envs)} of the ratios above; `≥` where some env's ratio is open-ended (counted as its lower bound).", ""]
    return out


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


@dataclass
class Table3Row:
    tokens: int | None  # label tokens this method spent on the env (None: not recorded)
    settings: dict[str, float]  # "BoN@16" / "beam @4x4" -> metric × 100, only the settings that were run


def _table3(ctx: _Ctx, per_env_curves: dict[str, dict[str, dict[int, float]]], metrics: dict[str, str]) -> dict[str, dict[str, Table3Row]]:
    """Table 3 per env; returns {env: {"mc": row, "td": row}}."""
    run = ctx.run
    cost = label_cost(run)
    envs = [e for e in run.envs() if "mc" in run.rms(e)]
    if not envs:
        ctx.not_run.append("Table 3: no MC-trained PRM results (`eval/<env>/mc/...`)")
        ctx.lines += ["not run", ""]
        return {}
    td_key = next((k for k in ("td-gae", "td", "agentprm") if k in cost), None)
    settings = [f"BoN@{n}" for n in TABLE3_BON] + [f"beam @{b}" for b in TABLE3_BEAM]
    out = {}
    for env in envs:
        metric = metrics[env]
        series = per_env_curves.get(env, {})
        td_tokens = cost.get(td_key or "", {}).get(env)
        rows, data = [], {}
        for label, key, rm, method in (("MC-based", "mc", "mc", "mc"), ("TD-based", "td", "agentprm", td_key)):
            tokens = cost.get(method or "", {}).get(env)
            got = {f"BoN@{n}": series[rm][n] for n in TABLE3_BON if n in series.get(rm, {})}
            for b in TABLE3_BEAM:
                if fs := run.find(env, "beam", rm, b):
                    got[f"beam @{b}"] = value(fs[0].records, metric)
            data[key] = Table3Row(tokens, got)
            rel = f"{tokens / td_tokens:.1f}× ({tokens} tok)" if tokens and td_tokens else "not recorded"
            rows.append([label, rel, *(_fmt(got[k]) if k in got else "not run" for k in settings)])
        out[env] = data
        ctx.lines += [f"### {env}", ""]
        ctx.lines += _table(["method", "label tokens", *settings], rows)
        where = ctx.show(run.folder_of(env).root / "labels")
        ctx.lines += ["", f"Label cost from `{where}/*.jsonl` ({', '.join(sorted(cost)) or 'none found'}); relative to TD."]
        ctx.sources(run.find(env, "beam", "mc") + run.find(env, "bon", "mc"))
    return out


def _score_distributions(ctx: _Ctx) -> dict[str, dict[str, float]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = ctx.run
    aucs: dict[str, dict[str, float]] = {}
    for env in run.envs():
        data = {}
        for rm in run.rms(env):
            f = run.largest_bon(env, rm)
            if f is None:
                continue
            ok, bad = [], []
            for t in f.records:
                for c in candidates_of(t):
                    (ok if c.success else bad).extend(c.scores)
            data[rm] = (f, ok, bad)
        if not data:
            ctx.not_run.append(f"{env}: score distributions (need best-of-n results)")
            continue
        fig, axes = plt.subplots(1, len(data), figsize=(4 * len(data), 3.2), squeeze=False)
        rows = []
        for ax, (rm, (_, ok, bad)) in zip(axes[0], data.items()):
            ax.hist(bad, bins=30, alpha=0.6, density=True, label=f"failed ({len(bad)} steps)")
            ax.hist(ok, bins=30, alpha=0.6, density=True, label=f"successful ({len(ok)} steps)")
            ax.set_title(rm)
            ax.set_xlabel("step score")
            ax.legend(fontsize=7)
            a = auroc(ok, bad)
            aucs.setdefault(env, {})[rm] = a
            rows.append([rm, f"{statistics.fmean(ok):.3f}" if ok else "–", f"{statistics.fmean(bad):.3f}" if bad else "–", f"{a:.3f}" if a == a else "–"])
        fig.tight_layout()
        png = ctx.plots / f"scores_{env}.png"
        fig.savefig(png, dpi=100)
        plt.close(fig)
        ctx.lines += [f"### {env}", "", f"![scores {env}]({ctx.rel(png)})", ""]
        ctx.lines += _table(["RM", "mean score, successful", "mean score, failed", "AUC (success > failed)"], rows)
        ctx.lines += ["", "Steps are those of every best-of-n candidate (all sampled trajectories, not only the chosen ones)."]
        ctx.sources([d[0] for d in data.values()])
    return aucs


def _ablation(ctx: _Ctx, metrics: dict[str, str]) -> dict[str, list[tuple[str, float, float]]]:
    run = ctx.run
    out: dict[str, list[tuple[str, float, float]]] = {}
    for env in run.envs():
        if ABLATION_RM not in run.rms(env):
            continue
        pairs = []
        used = []
        for f in [e for e in run.evals if e.env == env and e.rm == ABLATION_RM]:
            full = run.find(env, f.strategy, "agentprm", f.budget)
            if full:
                pairs.append((f"{f.strategy} {f.budget}", value(full[0].records, metrics[env]), value(f.records, metrics[env])))
                used += [full[0], f]
        if pairs:
            out[env] = pairs
            ctx.lines += [f"### {env}", ""]
            ctx.lines += _table(["strategy", "AgentPRM (β=1)", "without L_A (β=0)"], [[s, _fmt(a), _fmt(b)] for s, a, b in pairs])
            ctx.sources(used)
    if not out:
        ctx.not_run.append(f"L_A ablation (`eval/<env>/{ABLATION_RM}/...`, a PRM trained with beta = 0)")
        ctx.lines += ["not run", ""]
    return out


@dataclass
class Check:
    """One measured comparison a claim rests on, in one env (or "mean over envs")."""

    env: str
    ok: bool
    evidence: str  # the numbers compared, e.g. "AgentPRM BoN@64 45.0 > greedy 30.0"


@dataclass
class Claim:
    """A claim of paper.md §8 on these results: "holds" when every check holds, "does not hold" when any
    fails (a finding, reported as measured), "not measured" when nothing could be checked."""

    title: str
    rule: str  # what is compared, in words
    checks: list[Check]
    missing: list[str]  # the parts that could not be checked, and why

    def per_env(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for c in self.checks:
            out[c.env] = out.get(c.env, True) and c.ok
        return out

    @property
    def verdict(self) -> str:
        if not self.checks:
            return "not measured"
        return "holds" if all(c.ok for c in self.checks) else "does not hold"

    def per_env_text(self) -> str:
        return "; ".join(f"{e}: {'holds' if ok else 'does not hold'}" for e, ok in self.per_env().items()) or "–"


MEAN_ENV = "mean over envs"


def _greedy(run: RunSet, env: str, metric: str) -> float | None:
    g = run.find(env, "greedy")
    return value(g[0].records, metric) if g else None


def _beams(run: RunSet, env: str, rm: str) -> list[EvalFile]:
    return sorted(run.find(env, "beam", rm), key=lambda e: tuple(map(int, e.budget.split("x"))))


def claim_checks(run: RunSet, metrics: dict[str, str], bon: dict, eff: dict, t3: dict[str, dict[str, Table3Row]], aucs: dict, abl: dict) -> list[Claim]:
    """Claims 1-5 and 7 of paper.md §8 checked on the measured numbers (pure: reads the sections' results)."""
    envs = run.envs()
    claims = []

    # 1: RMs with BoN or search beat greedy SFT, and the gain grows with inference compute
    checks, missing = [], []
    for env in envs:
        m, g = metrics[env], _greedy(run, env, metrics[env])
        series = bon.get(env, {})
        if g is None:
            missing.append(f"{env}: no greedy SFT result")
        else:
            for rm in TABLE1_RMS:
                if rm in series:
                    c = series[rm]
                    checks.append(Check(env, c[max(c)] > g, f"{rm} BoN@{max(c)} {c[max(c)]:.1f} vs greedy {g:.1f}"))
                if bs := _beams(run, env, rm):
                    v = value(bs[-1].records, m)
                    checks.append(Check(env, v > g, f"{rm} beam @{bs[-1].budget} {v:.1f} vs greedy {g:.1f}"))
        if "agentprm" in series and len(series["agentprm"]) > 1:
            c = series["agentprm"]
            checks.append(Check(env, c[max(c)] > c[min(c)], f"AgentPRM BoN@{min(c)} {c[min(c)]:.1f} → @{max(c)} {c[max(c)]:.1f}"))
        bs = _beams(run, env, "agentprm")
        if len(bs) > 1:
            lo, hi = value(bs[0].records, m), value(bs[-1].records, m)
            checks.append(Check(env, hi > lo, f"AgentPRM beam @{bs[0].budget} {lo:.1f} → @{bs[-1].budget} {hi:.1f}"))
    claims.append(Claim(
        "1. RMs with BoN or search beat greedy SFT, and the gain grows with compute",
        "every trained RM (orm, pvm, agentprm) at its largest BoN and beam budget > greedy SFT; AgentPRM's largest budget > its smallest (BoN and beam)",
        checks, missing))

    # 2: AgentPRM more compute-efficient (paper: ~8x on average), wins consistently in BoN and beam
    checks, missing = [], []
    for env in [*envs, "average"]:
        shown = MEAN_ENV if env == "average" else env
        for b in ("pvm", "orm"):
            ratios = eff.get(env, {}).get(b)
            if ratios:
                last = ratios[-1]
                paper = " (paper: ~8×)" if env == "average" else ""
                checks.append(Check(shown, last.defined and (last.value is None or last.value > 1), f"efficiency vs {b} at N={last.n}: {last}{paper}"))
            if env == "average":
                continue
            a, c = bon.get(env, {}).get("agentprm"), bon.get(env, {}).get(b)
            if a and c:
                ns = [n for n in sorted(set(a) & set(c)) if n >= 2]  # N = 1 is one sample: every RM picks it
                lost = [f"N={n} {a[n]:.1f} vs {c[n]:.1f}" for n in ns if a[n] < c[n]]
                if ns:
                    checks.append(Check(env, not lost, f"BoN: AgentPRM ≥ {b} at {len(ns) - len(lost)}/{len(ns)} budgets N≥2" + (f" (behind at {', '.join(lost)})" if lost else "")))
            for f in run.find(env, "beam", b):
                if fa := run.find(env, "beam", "agentprm", f.budget):
                    av, bv = value(fa[0].records, metrics[env]), value(f.records, metrics[env])
                    checks.append(Check(env, av >= bv, f"beam @{f.budget}: AgentPRM {av:.1f} vs {b} {bv:.1f}"))
    if "average" not in eff:
        missing.append("efficiency on the env-averaged curve (needs agentprm and pvm/orm best-of-n in ≥ 2 envs)")
    claims.append(Claim(
        "2. AgentPRM is more compute-efficient than PVM/ORM (paper: ~8× on average) and wins in both BoN and beam",
        "efficiency ratio at AgentPRM's largest N > 1 (per env and on the env-averaged curve); AgentPRM ≥ pvm/orm at every BoN budget N ≥ 2 and every beam budget",
        checks, missing))

    # 3: scales robustly; ORM and PVM plateau or degrade
    checks, missing = [], []
    for env in envs:
        series = bon.get(env, {})
        a = series.get("agentprm")
        if not a or len(a) < 3:
            missing.append(f"{env}: needs AgentPRM best-of-n with ≥ 3 budgets")
            continue
        ns = sorted(a)
        mid = ns[len(ns) // 2]
        gain = a[ns[-1]] - a[mid]
        for b in ("pvm", "orm"):
            if b in series and mid in series[b] and ns[-1] in series[b]:
                bgain = series[b][ns[-1]] - series[b][mid]
                checks.append(Check(env, gain >= 0 and gain > bgain, f"gain N={mid}→{ns[-1]}: AgentPRM {gain:+.1f}, {b} {bgain:+.1f}"))
    claims.append(Claim(
        "3. AgentPRM scales robustly; ORM and PVM plateau or degrade",
        "from the middle to the largest BoN budget AgentPRM does not drop and gains more than pvm/orm",
        checks, missing))

    # 4: modelling progress (L_A) matters
    checks = [Check(env, a > b, f"{s}: AgentPRM {a:.1f} vs β=0 {b:.1f}") for env, pairs in abl.items() for s, a, b in pairs]
    claims.append(Claim(
        "4. Modelling progress (L_A) matters",
        f"AgentPRM > the same PRM trained with β = 0 (`{ABLATION_RM}`) in every setting run with both",
        checks, [] if checks else ["no β = 0 results"]))

    # 5: TD + GAE labels need fewer sampled tokens than MC and give better PRMs
    checks, missing = [], []
    for env, rows in t3.items():
        mc, td = rows["mc"], rows["td"]
        if mc.tokens and td.tokens:
            checks.append(Check(env, mc.tokens > td.tokens, f"MC label tokens {mc.tokens / td.tokens:.2f}× TD's ({mc.tokens} vs {td.tokens}; paper: 1.5–2.8×)"))
        else:
            missing.append(f"{env}: label tokens not recorded for both MC and TD")
        both = [k for k in mc.settings if k in td.settings]
        lost = [f"{k} {td.settings[k]:.1f} vs {mc.settings[k]:.1f}" for k in both if td.settings[k] < mc.settings[k]]
        if both:
            checks.append(Check(env, not lost, f"TD ≥ MC in {len(both) - len(lost)}/{len(both)} search settings" + (f" (behind at {', '.join(lost)})" if lost else "")))
    if not t3:
        missing.append("no MC-trained PRM results")
    claims.append(Claim(
        "5. TD labels cost fewer sampled tokens than MC and give a better PRM",
        "MC's label tokens > TD's; TD-trained AgentPRM ≥ MC-trained PRM in every BoN/beam setting run with both",
        checks, missing))

    # 7: value estimates separate successful from failed trajectories' steps
    checks = [Check(env, a["agentprm"] > 0.5, f"AUC {a['agentprm']:.3f}") for env, a in aucs.items() if "agentprm" in a and a["agentprm"] == a["agentprm"]]
    claims.append(Claim(
        "7. AgentPRM scores steps of successful trajectories higher than those of failed ones",
        "AUC (a successful trajectory's step scored above a failed one's) > 0.5 on the best-of-n candidates",
        checks, [] if checks else ["no AgentPRM best-of-n candidates with both outcomes"]))
    return claims


def _claims(ctx: _Ctx, claims: list[Claim]) -> None:
    ctx.lines += _table(["claim (paper §8)", "verdict", "per env"], [[c.title, f"**{c.verdict}**", c.per_env_text()] for c in claims])
    ctx.lines += [""]
    for c in claims:
        ctx.lines += [f"**{c.title}**: {c.verdict}. Checked: {c.rule}.", ""]
        ctx.lines += [f"- {k.env}: {'holds' if k.ok else 'does not hold'}: {k.evidence}" for k in c.checks]
        ctx.lines += [f"- not measured: {m}" for m in c.missing]
        ctx.lines += [""]
    ctx.lines += [
        "A claim that does not hold is a finding about this setting, reported as measured. Claims 6 (PPO, math, "
        "larger models) and 8 (a stated limitation) are outside what this report measures.",
    ]


def write_report(run_dirs: str | Path | Sequence[str | Path], out_dir: str | Path | None = None) -> Path:
    """Write `report.md` and `plots/*.png` into `out_dir` and return the report's path.

    `run_dirs` is one run folder or several (each env's results in exactly one of them; an env in two is a
    UserError). `out_dir` defaults to the run folder when there is one; several folders need it.
    """
    roots = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(r) for r in run_dirs]
    if not roots:
        raise UserError("give at least one run folder (runs/NAME)")
    if out_dir is None:
        if len(roots) > 1:
            raise UserError("several run folders make one combined report: give --out DIR (e.g. runs/report)")
        out_dir = roots[0]
    out = Path(out_dir)
    run = RunSet.scan(roots)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(run, out, plots, [], [])
    lines = ctx.lines
    lines += _header(ctx, roots)
    metrics = {env: metric_of(env) for env in run.envs()}

    lines += ["## (a) Table 1: greedy SFT against RM-guided beam search", ""]
    if not run.envs():
        lines += ["not run (no `eval/<env>/` results)", ""]
    for env in run.envs():
        _table1(ctx, env, metrics[env])
    lines += ["## (b) Best-of-N curves", ""]
    bon = _bon_section(ctx, metrics)
    if not bon:
        lines += ["not run", ""]
    lines += ["## (c) Compute-efficiency ratio of AgentPRM", ""]
    lines += [
        "For each budget N of AgentPRM's best-of-N, the budget a baseline needs for the same success "
        "(interpolated on log2 N), divided by N; `> x` when the baseline never reaches it within its largest budget.",
        "",
    ]
    eff = _efficiency_section(ctx, bon)
    if not eff:
        lines += ["not run", ""]
    lines += ["## (d) Table 3: TD against MC labels", ""]
    t3 = _table3(ctx, bon, metrics)
    lines += ["## (e) PRM scores on steps of successful and failed trajectories", ""]
    aucs = _score_distributions(ctx)
    if not aucs:
        lines += ["not run", ""]
    lines += ["## (f) Ablation: without L_A (β = 0)", ""]
    abl = _ablation(ctx, metrics)
    lines += ["## The paper's claims on these results", ""]
    _claims(ctx, claim_checks(run, metrics, bon, eff, t3, aucs, abl))
    lines += ["", "## Not run", ""]
    lines += [f"- {x}" for x in ctx.not_run] or ["- nothing: every section has results"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _header(ctx: _Ctx, roots: list[Path]) -> list[str]:
    run = ctx.run
    if len(run.folders) == 1:
        f = run.folders[0]
        cfg = f"`{ctx.show(f.config_path)}`" if f.config_path.is_file() else "none (no config.yaml in the run folder)"
        return [f"# AgentPRM report: `{f.root.name}`", "",
                f"Run folder `{f.root}`; config: {cfg}. Environments: {', '.join(run.envs()) or 'none'}.", ""]
    rows = []
    for f in run.folders:
        cfg = f"`{ctx.show(f.config_path)}`" if f.config_path.is_file() else "none"
        rows.append([f"`{f.root}`", ", ".join(f.envs()) or "none", cfg])
    return [f"# AgentPRM report: {', '.join(f'`{r.name}`' for r in roots)}", "",
            f"One report over {len(roots)} run folders; each env's results come from the folder that holds them. "
            f"Environments: {', '.join(run.envs()) or 'none'}.", "",
            *_table(["run folder", "envs", "config"], rows), ""]
