"""`write_report(run_dirs, out_dir)`: report.md with the paper's tables and plots from one or more run folders.

One folder (the pipeline's `runs/NAME`) gives that folder's report, written into it. Several folders (one a
env, as `agentprm pipeline --env babyai` writes them) give one combined report in `out_dir`: each env's
sections come from the folder that holds its results (`RunSet`), and (b), (c) and the claims add the
average over envs.

The numbers are built once (`agentprm.report.results.build_results`: typed per-env results with per-task
values), the claims are judged on them (`agentprm.report.claims`), and this module only renders and plots.
Sections: (a) Table 1 per env (greedy SFT; every RM under beam @NxM); (b) best-of-n curves per env and
averaged over envs; (c) compute-efficiency ratios of AgentPRM against the baselines; (d) Table 3 (TD vs
MC label cost and search success); (e) PRM score distributions on steps of successful and failed
trajectories; (f) the L_A ablation (beta = 0); then the paper's claims checked on these numbers, and
what was not run. Every difference between two methods carries a 95% paired-bootstrap interval over the
tasks both have. Every table and figure names the files and commands that produced it. Nothing is
filled in: a missing piece is listed as "not run".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentprm.errors import UserError
from agentprm.labels.outcome import label_method
from agentprm.pipeline_config import MC_LA_RM
from agentprm.report.claims import MEAN_ENV, Check, Claim, judge
from agentprm.report.layout import ABLATION_RM, EvalFile, RunFolder, RunSet
from agentprm.report.results import (
    BASELINES,
    MC_RMS,
    TABLE1_RMS,
    EnvResults,
    Measure,
    Results,
    aggregation_of,
    average_curves,
    build_results,
    compare,
    label_cost,
    metric_of,
    td_label_method,
)
from agentprm.run_layout import RunLayout
from agentprm.search.best_of_n import CurvePoint, bon_curve, budgets_upto, candidates_of
from agentprm.search.efficiency import Ratio
from agentprm.trajectory import Trajectory

PAPER_BEAMS = ("2x2", "4x4", "8x8")
TABLE3_BON = (8, 16, 32, 64)
TABLE3_BEAM = ("4x4", "8x8")

__all__ = [
    "Check",
    "Claim",
    "average_curves",
    "curves",
    "label_cost",
    "mean_ratio",
    "metric_of",
    "value",
    "write_report",
]


def value(records: Sequence[Trajectory], metric: str) -> float:
    """The mean of `metric` × 100 over result records."""
    from agentprm.labels.outcome import metric_value

    if not records:
        return float("nan")
    return 100.0 * sum(metric_value(t, metric) for t in records) / len(records)


def _fmt(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:.1f}"


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
        files = list(dict.fromkeys(files))
        if not files:
            return
        self.lines.append("")
        for root in dict.fromkeys(self._root_of(f) for f in files):
            cfg = root / "config.yaml"
            where = f"run folder `{root}`, config " + (
                f"`{self.show(cfg)}`" if cfg.is_file() else "none (no config.yaml)"
            )
            self.lines.append(f"Produced by ({where}):")
            for f in files:
                if self._root_of(f) == root:
                    cmds = "; ".join(f"`{c}`" for c in f.commands()) or "(empty file)"
                    recorded = RunLayout(root).provenance(f.path).is_file()
                    note = (
                        "" if recorded else " (provenance not recorded: not made by the pipeline, completeness unknown)"
                    )
                    self.lines.append(f"- `{self.show(f.path)}` ({len(f.records)} tasks{note}): {cmds}")
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
    """Each RM's best-of-n curve on `env` as `CurvePoint`s (budgets 1, 2, 4, ... up to its largest file)."""
    out = {}
    for rm in run.rms(env):
        f = run.largest_bon(env, rm)
        if f is None:
            continue
        groups = [g for g in (candidates_of(t) for t in f.records) if g]
        if groups:
            n = min(len(g) for g in groups)
            out[rm] = (f, bon_curve(groups, budgets_upto(n), aggregation_of(f)))
    return out


def _diff_rows(pairs: Sequence[tuple[str, Measure, Measure]]) -> list[list[str]]:
    rows = []
    for setting, a, b in pairs:
        d = compare(a, b)
        if d is None:
            rows.append([setting, a.what, b.what, "–", "–", "no task in common", "0"])
            continue
        left = d.only_a + d.only_b
        rows.append(
            [
                setting,
                a.what,
                b.what,
                _fmt(d.mean_a),
                _fmt(d.mean_b),
                f"{d.diff:+.1f} {d.interval()}",
                f"{d.tasks}" + (f" ({left} left out)" if left else ""),
            ]
        )
    return rows


def _differences(ctx: _Ctx, pairs: Sequence[tuple[str, Measure, Measure]]) -> None:
    if not pairs:
        return
    ctx.lines += [
        "",
        "Differences (first − second), each with its 95% paired-bootstrap interval over the tasks both "
        "have (2000 resamples, seed 0); a comparison uses only those tasks and says how many it left out:",
        "",
    ]
    ctx.lines += _table(
        ["setting", "first", "second", "first mean", "second mean", "difference [95% CI]", "tasks"], _diff_rows(pairs)
    )


# -- sections -------------------------------------------------------------------------------------------


def _table1(ctx: _Ctx, e: EnvResults) -> None:
    ctx.lines += [f"### {e.env}", ""]
    beams = e.beams()
    rms = [r for r in TABLE1_RMS if r in e.rms()] + [r for r in e.rms() if r not in TABLE1_RMS]
    header = ["method", "greedy", *(f"@{b}" for b in beams)]
    rows: list[list[str]] = []
    if e.greedy is not None:
        rows.append(["SFT (greedy)", _fmt(e.greedy.mean), *("" for _ in beams)])
    else:
        ctx.not_run.append(
            f"{e.env}: greedy SFT (`{ctx.show(ctx.run.folder_of(e.env).layout.result(e.env, 'greedy'))}`)"
        )
    if e.rft is not None:
        rows.append(["RFT (greedy)", _fmt(e.rft.mean), *("" for _ in beams)])
    else:
        ctx.not_run.append(
            f"{e.env}: greedy RFT (`{ctx.show(ctx.run.folder_of(e.env).layout.result(e.env, 'greedy', 'rft'))}`; "
            "pipeline config `rft: true`)"
        )
    for rm in rms:
        cells = [_fmt(e.beam[rm][b].mean) if b in e.beam.get(rm, {}) else "not run" for b in beams]
        if beams:
            rows.append([rm, "", *cells])
    layout = ctx.run.folder_of(e.env).layout
    for rm in TABLE1_RMS:
        for pb in PAPER_BEAMS:  # the paper's budgets, as written ("4x4")
            if not any(str(k) == pb for k in e.beam.get(rm, {})):
                ctx.not_run.append(f"{e.env}: {rm} beam @{pb} (`{ctx.show(layout.result(e.env, 'beam', rm, pb))}`)")
    if not rows:
        ctx.lines += ["not run", ""]
        return
    ctx.lines += _table(header, rows)
    ctx.lines += ["", f"Metric: {e.metric} × 100. Env or policy errors among these results: {e.errors}."]
    pairs = []
    for b in beams:
        a = e.beam.get("agentprm", {}).get(b)
        if a is None:
            continue
        for other in ("pvm", "orm"):
            if (m := e.beam.get(other, {}).get(b)) is not None:
                pairs.append((f"beam @{b}", a, m))
        pairs += [(f"beam @{b}", a, g) for g in (e.greedy, e.rft) if g is not None]
    if e.greedy is not None and e.rft is not None:
        pairs.append(("greedy", e.rft, e.greedy))
    _differences(ctx, pairs)
    used = [m.source for m in (e.greedy, e.rft) if m is not None and m.source is not None]
    used += [m.source for per in e.beam.values() for m in per.values() if m.source]
    ctx.sources(used)


def _plot_curves(
    path: Path,
    title: str,
    series: dict[str, dict[int, float]],
    oracle: dict[int, float] | None,
    greedy: float | None,
    metric: str,
) -> None:
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


def _bon_section(ctx: _Ctx, res: Results) -> None:
    for e in res.envs:
        if not e.bon:
            ctx.not_run.append(f"{e.env}: best-of-n (`eval/{e.env}/<rm>/bon_<N>.jsonl`)")
            continue
        series, oracle = e.curves(), e.oracle_curve()
        g = e.greedy.mean if e.greedy else None
        png = ctx.plots / f"bon_{e.env}.png"
        _plot_curves(png, f"best-of-N, {e.env}", series, oracle, g, e.metric)
        budgets = sorted({n for s in series.values() for n in s})
        ctx.lines += [f"### {e.env}", "", f"![best-of-N {e.env}]({ctx.rel(png)})", ""]
        rows = [[rm, *(_fmt(s.get(n)) for n in budgets)] for rm, s in series.items()]
        rows.append(["oracle@N", *(_fmt(oracle.get(n)) for n in budgets)])
        ctx.lines += _table(["RM", *(f"N={n}" for n in budgets)], rows)
        what = "pass@N: any of the first N succeeds" if e.metric == "success" else "the best reward among the first N"
        ctx.lines += ["", f"Metric: {e.metric} × 100; oracle@N = {what}."]
        pairs = []
        a = e.bon.get("agentprm", {})
        for n in sorted(a):
            for other in BASELINES:
                if (m := e.bon.get(other, {}).get(n)) is not None and n >= 2:  # N = 1: every RM picks the one sample
                    pairs.append((f"BoN@{n}", a[n], m))
            if e.greedy is not None:
                pairs.append((f"BoN@{n}", a[n], e.greedy))
        if e.greedy is not None and e.oracle:  # the headroom a selector has over greedy decoding
            pairs.append((f"headroom @{max(e.oracle)}", e.oracle[max(e.oracle)], e.greedy))
        _differences(ctx, pairs)
        ctx.sources([s for per in e.bon.values() if (s := next(iter(per.values())).source) is not None])
    per_env = {e.env: e.curves() for e in res.envs if e.bon}
    if len(per_env) > 1:
        _average_curves(ctx, res)
    elif len(res.envs) > 1:
        ctx.not_run.append("best-of-n averaged over envs (needs best-of-n results in at least two envs)")


def _average_curves(ctx: _Ctx, res: Results) -> None:
    envs = [e for e in res.envs if e.bon]
    avg = res.average()
    ctx.lines += ["### average over envs", ""]
    missing = sorted({rm for e in envs for rm in e.bon} - set(avg))
    if not avg:
        ctx.lines += ["not run (no RM has best-of-n results in every env)", ""]
        ctx.not_run.append("best-of-n averaged over envs (needs one RM's best-of-n in every env)")
        return
    from agentprm.search.efficiency import mean_curve

    oracle = mean_curve([e.oracle_curve() for e in envs])
    g = [e.greedy.mean for e in envs if e.greedy is not None]
    greedy = sum(g) / len(g) if len(g) == len(envs) else None
    png = ctx.plots / "bon_average.png"
    _plot_curves(png, f"best-of-N, mean over {', '.join(e.env for e in envs)}", avg, oracle, greedy, "mean metric")
    budgets = sorted({n for c in avg.values() for n in c})
    rows = [[rm, *(_fmt(c.get(n)) for n in budgets)] for rm, c in avg.items()]
    if oracle:
        rows.append(["oracle@N", *(_fmt(oracle.get(n)) for n in budgets)])
    ctx.lines += [f"![best-of-N average]({ctx.rel(png)})", ""]
    ctx.lines += _table(["RM", *(f"N={n}" for n in budgets)], rows)
    kinds = ", ".join(f"{e.env}: {e.metric}" for e in envs)
    ctx.lines += [
        "",
        f"Plain mean over {len(envs)} envs of the per-env curves above (each env's own metric × 100; {kinds}), "
        "on the budgets every env has. Greedy line: mean of the envs' greedy SFT "
        + ("(every env has one)." if greedy is not None else "(not drawn: some env has no greedy result).")
        + (f" Not averaged (missing in some env): {', '.join(missing)}." if missing else "")
        + " Sources: the per-env files listed above. No interval here: the envs' task sets differ (see each env's differences).",
        "",
    ]


def mean_ratio(ratios: Sequence[Ratio]) -> tuple[float, bool]:
    """The plain mean of several envs' ratios at one budget, and whether it is only a lower bound (some env's
    baseline never reached AgentPRM's level: its ratio counts as its lower bound). This is the alternative
    reading of the paper's "8× on average" (§9); the default, shown first, is the ratio of the env-averaged
    curves, as in its Fig. 1."""
    defined = [r for r in ratios if r.defined]  # an env where AgentPRM solved nothing has no ratio
    if not defined:
        return float("nan"), False
    vals = [r.lower_bound for r in defined]
    return sum(vals) / len(vals), any(r.value is None for r in defined)


def _ratio_table(ctx: _Ctx, eff: dict[str, list[Ratio]]) -> None:
    budgets = sorted({r.n for rs in eff.values() for r in rs})
    rows = [[b, *(str(next((r for r in rs if r.n == n), "–")) for n in budgets)] for b, rs in eff.items()]
    ctx.lines += _table(["baseline", *(f"N={n}" for n in budgets)], rows)
    ctx.lines.append("")


def _efficiency_section(ctx: _Ctx, res: Results) -> bool:
    shown = False
    per_env: dict[str, dict[str, list[Ratio]]] = {}
    for e in res.envs:
        if not e.bon:
            continue
        eff = e.efficiency()
        if not eff:
            ctx.not_run.append(f"{e.env}: compute-efficiency ratio (needs agentprm and a baseline's best-of-n)")
            continue
        per_env[e.env] = eff
        ctx.lines += [f"### {e.env}", ""]
        _ratio_table(ctx, eff)
        shown = True
    avg = res.average_efficiency()
    if avg:
        ctx.lines += [
            "### average over envs",
            "",
            'On the curves averaged over envs (section b), as the paper\'s "8× on average" (Fig. 1).',
            "",
        ]
        _ratio_table(ctx, avg)
    envs = list(per_env)
    if len(envs) > 1:
        # the alternative reading of "on average": the mean of the per-env ratios, not the ratio of the mean curves
        baselines = [b for b in per_env[envs[0]] if all(b in per_env[e] for e in envs)]
        budgets = (
            sorted(set.intersection(*({r.n for r in per_env[e][baselines[0]]} for e in envs))) if baselines else []
        )
        rows = []
        for b in baselines:
            cells = []
            for n in budgets:
                m, lower = mean_ratio([next(r for r in per_env[e][b] if r.n == n) for e in envs])
                cells.append("n/a" if math.isnan(m) else f"{'≥ ' if lower else ''}{m:.3g}x")
            rows.append([b, *cells])
        if rows:
            ctx.lines += ["### mean of the per-env ratios", ""]
            ctx.lines += _table(["baseline", *(f"N={n}" for n in budgets)], rows)
            ctx.lines += [
                "",
                f"Plain mean over {', '.join(envs)} of the ratios above; `≥` where some env's ratio is open-ended (counted as its lower bound).",
                "",
            ]
    return shown


def _table3(ctx: _Ctx, res: Results) -> None:
    """Table 3 per env: label tokens of TD and MC and the search success of the PRM each trains (MC twice:
    without and with L_A, `MC_RMS`)."""
    envs = [e for e in res.envs if any(rm in e.bon or rm in e.beam for rm in MC_RMS)]
    if not envs:
        ctx.not_run.append("Table 3: no MC-trained PRM results (`eval/<env>/mc/...`, `eval/<env>/mc-la/...`)")
        ctx.lines += ["not run", ""]
        return
    td = td_label_method()
    settings = [f"BoN@{n}" for n in TABLE3_BON] + [f"beam @{b}" for b in TABLE3_BEAM]
    methods = [(f"MC-based, {how} (`{rm}`)", rm) for rm, how in MC_RMS.items()]
    for e in envs:
        td_tokens = e.label_tokens.get(td)
        rows, pairs = [], []
        got: dict[str, dict[str, Measure]] = {}
        for label, rm in [*methods, ("TD-based, L_Q + β·L_A (`agentprm`)", "agentprm")]:
            tokens = e.label_tokens.get(label_method(rm) or rm)
            g = {f"BoN@{n}": e.bon[rm][n] for n in TABLE3_BON if n in e.bon.get(rm, {})}
            g.update({f"beam @{b}": m for b, m in e.beam.get(rm, {}).items() if str(b) in TABLE3_BEAM})
            got[rm] = g
            if rm not in e.bon and rm not in e.beam:
                how = " (pipeline config `mc_advantage_ablation: true`)" if rm == MC_LA_RM else ""
                ctx.not_run.append(f"{e.env}: Table 3's `{rm}` row{how}")
                rows.append([label, "not run", *("not run" for _ in settings)])
                continue
            rel = f"{tokens / td_tokens:.1f}× ({tokens} tok)" if tokens and td_tokens else "not recorded"
            rows.append([label, rel, *(_fmt(g[k].mean) if k in g else "not run" for k in settings)])
        pairs = [
            (k, got["agentprm"][k], got[rm][k])
            for rm in MC_RMS
            for k in settings
            if k in got["agentprm"] and k in got[rm]
        ]
        ctx.lines += [f"### {e.env}", ""]
        ctx.lines += _table(["method", "label tokens", *settings], rows)
        where = ctx.show(ctx.run.folder_of(e.env).layout.labels_dir)
        ctx.lines += [
            "",
            f"Label cost in the paper's unit, sampled policy tokens, from `{where}/*.jsonl` "
            f"({', '.join(sorted(e.label_tokens)) or 'none found'}): TD ({td}) counts every collected trajectory "
            "the TD PRM trains on; MC its seed trajectories plus every rollout. Relative to TD. Both MC rows train "
            "on the same MC labels (one labelling, the same tokens): `mc` with L_Q only (the paper's MC, paper.md "
            f"§9 item 12), `{MC_LA_RM}` with L_Q + β·L_A as AgentPRM, so TD-based against `{MC_LA_RM}` differs only "
            "in the labels.",
        ]
        _differences(ctx, pairs)
        ctx.sources(
            [
                m.source
                for rm in MC_RMS
                for per in (e.bon.get(rm, {}), e.beam.get(rm, {}))
                for m in per.values()
                if m.source
            ]
        )


def _score_distributions(ctx: _Ctx, res: Results) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = False
    for e in res.envs:
        if not e.scores:
            ctx.not_run.append(f"{e.env}: score distributions (need best-of-n results)")
            continue
        fig, axes = plt.subplots(1, len(e.scores), figsize=(4 * len(e.scores), 3.2), squeeze=False)
        rows = []
        for ax, (rm, s) in zip(axes[0], e.scores.items()):
            ax.hist(s.bad, bins=30, alpha=0.6, density=True, label=f"failed ({len(s.bad)} steps)")
            ax.hist(s.ok, bins=30, alpha=0.6, density=True, label=f"successful ({len(s.ok)} steps)")
            ax.set_title(rm)
            ax.set_xlabel("step score")
            ax.legend(fontsize=7)
            a, w = s.auc, s.within_task_auc
            rows.append(
                [
                    rm,
                    f"{statistics.fmean(s.ok):.3f}" if s.ok else "–",
                    f"{statistics.fmean(s.bad):.3f}" if s.bad else "–",
                    f"{a:.3f}" if a == a else "–",
                    f"{w:.3f}" if w == w else "–",
                ]
            )
        fig.tight_layout()
        png = ctx.plots / f"scores_{e.env}.png"
        fig.savefig(png, dpi=100)
        plt.close(fig)
        ctx.lines += [f"### {e.env}", "", f"![scores {e.env}]({ctx.rel(png)})", ""]
        ctx.lines += _table(
            [
                "RM",
                "mean score, successful",
                "mean score, failed",
                "AUC (success > failed)",
                "within-task AUC (trajectory scores)",
            ],
            rows,
        )
        ctx.lines += [
            "",
            "Steps are those of every best-of-n candidate (all sampled trajectories, not only the chosen ones; "
            "candidates that ended in an env or policy error are left out). The first AUC pools every step of "
            "every task; the within-task AUC compares only candidates of the same task, by the trajectory score "
            "best-of-N ranks them by (the search's aggregation), so it is the one that predicts best-of-N: an "
            "RM can tell easy tasks from hard ones (high pooled AUC) and still not rank a task's own candidates "
            "(within-task AUC near or below 0.5).",
        ]
        ctx.sources([s.source for s in e.scores.values()])
        shown = True
    return shown


def _ablation(ctx: _Ctx, res: Results) -> None:
    shown = False
    for e in res.envs:
        pairs = []
        full, abl = e.bon.get("agentprm", {}), e.bon.get(ABLATION_RM, {})
        pairs += [(f"BoN@{n}", full[n], abl[n]) for n in sorted(set(full) & set(abl))]
        fb, ab = e.beam.get("agentprm", {}), e.beam.get(ABLATION_RM, {})
        pairs += [(f"beam @{b}", fb[b], ab[b]) for b in sorted(set(fb) & set(ab))]
        if not pairs:
            continue
        shown = True
        ctx.lines += [f"### {e.env}", ""]
        ctx.lines += _table(
            ["strategy", "AgentPRM (β=1)", "without L_A (β=0)"], [[s, _fmt(a.mean), _fmt(b.mean)] for s, a, b in pairs]
        )
        _differences(ctx, pairs)
        ctx.sources([m.source for _, a, b in pairs for m in (a, b) if m.source])
    if not shown:
        ctx.not_run.append(f"L_A ablation (`eval/<env>/{ABLATION_RM}/...`, a PRM trained with beta = 0)")
        ctx.lines += ["not run", ""]


def _prm_training(ctx: _Ctx) -> None:
    from agentprm.report.results import prm_trainings

    prms = prm_trainings(ctx.run)
    if not prms:
        ctx.lines += ["not run (no `prm/<name>/prm_config.json` in the run folders)", ""]
        return
    several = len(ctx.run.folders) > 1
    rows = [
        [
            *([f"`{p.root.name}`"] if several else []),
            p.name,
            p.objective,
            _num(p.beta),
            _num(p.items),
            _num(p.epochs),
            _num(p.steps),
            _num(p.lr),
            _num(p.batch_size),
            "–" if p.mc_advantage_loss is None else "yes (L_Q + β·L_A)" if p.mc_advantage_loss else "no (L_Q only)",
        ]
        for p in prms
    ]
    ctx.lines += _table(
        [
            *(["run"] if several else []),
            "PRM",
            "objective",
            "β",
            "trajectories",
            "epochs",
            "optimiser steps",
            "lr",
            "batch",
            "mc_advantage_loss",
        ],
        rows,
    )
    ctx.lines += [
        "",
        "From each PRM's `prm_config.json`. The MC PRMs (`mc`, and `mc-la` with β·L_A: `mc_advantage_loss`) train "
        "on the MC-labelled seed trajectories only; the pipeline scales their epochs so their optimiser steps match "
        "the TD PRMs' (`mc_equal_steps`).",
        "",
    ]


def _num(x: object) -> str:
    return "–" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)


def _claims(ctx: _Ctx, claims: list[Claim]) -> None:
    ctx.lines += _table(
        ["claim (paper §8)", "verdict", "per env", "intervals"],
        [[c.title, f"**{c.verdict}**", c.per_env_text(), c.strength() or "–"] for c in claims],
    )
    ctx.lines += [""]
    for c in claims:
        ctx.lines += [f"**{c.title}**: {c.verdict}. Checked: {c.rule}.", ""]
        ctx.lines += [f"- {k.env}: {k.status}: {k.evidence}" for k in c.checks]
        ctx.lines += [f"- not measured: {m}" for m in c.missing]
        ctx.lines += [""]
    ctx.lines += [
        "A claim that does not hold is a finding about this setting, reported as measured. A check holds on its point "
        "estimate; a failing check whose interval contains 0 is a tie (the task sample cannot tell), and a claim whose "
        'only failing checks are ties is "not separated". Claims 6 (PPO, math, larger models) and 8 '
        f"(a stated limitation) are outside what this report measures. ({MEAN_ENV}: the curves averaged over envs.)",
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
    res = build_results(run)

    lines += ["## (a) Table 1: greedy SFT against RM-guided beam search", ""]
    if not res.envs:
        lines += ["not run (no `eval/<env>/` results)", ""]
    for e in res.envs:
        _table1(ctx, e)
    lines += ["## (b) Best-of-N curves", ""]
    _bon_section(ctx, res)
    if not any(e.bon for e in res.envs):
        lines += ["not run", ""]
    lines += ["## (c) Compute-efficiency ratio of AgentPRM", ""]
    lines += [
        "For each budget N of AgentPRM's best-of-N, with L the level AgentPRM reaches there: the smallest budget at "
        "which a baseline reaches L over the smallest budget at which AgentPRM does (both interpolated on log2 N), "
        "so equal curves are 1x even on a plateau; `> x` when the baseline never reaches L within its largest budget "
        "(x = that budget over AgentPRM's). Ratios of means over tasks: no interval.",
        "",
    ]
    if not _efficiency_section(ctx, res):
        lines += ["not run", ""]
    lines += ["## (d) Table 3: TD against MC labels", ""]
    _table3(ctx, res)
    lines += ["## (e) PRM scores on steps of successful and failed trajectories", ""]
    if not _score_distributions(ctx, res):
        lines += ["not run", ""]
    lines += ["## (f) Ablation: without L_A (β = 0)", ""]
    _ablation(ctx, res)
    lines += ["## (g) PRMs: training data and optimiser steps", ""]
    _prm_training(ctx)
    from agentprm.rl.report import rl_section

    lines += rl_section(roots, plots)  # Figure 5's shape, where `agentprm rl` runs exist in the folders
    lines += ["## The paper's claims on these results", ""]
    _claims(ctx, judge(res))
    lines += ["", "## Stale or partial results (not used)", ""]
    if run.excluded:
        lines += [
            "These result files are in the run folder but are left out of every table, figure and claim above:",
            "",
        ]
        lines += [f"- `{ctx.show(x.path)}`: {x.why}. Complete it with `{x.command}`." for x in run.excluded]
    else:
        lines += ["- none: every result file found is complete and matches its run folder's config"]
    lines += ["", "## Not run", ""]
    lines += [f"- {x}" for x in ctx.not_run] or ["- nothing: every section has results"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _episode_cap(config_path: Path) -> int | None:
    """The run's episode cap when its config sets one (None: the env's own, the paper's and AgentGym's)."""
    import yaml

    try:
        cap = (yaml.safe_load(config_path.read_text()) or {}).get("max_rounds")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return cap or None


def _cap_sentence(cap: int | None, where: str = "") -> str:
    return f" Episodes capped at **{cap} rounds**{where} (`max_rounds`; the env's own otherwise)." if cap else ""


def _header(ctx: _Ctx, roots: list[Path]) -> list[str]:
    run = ctx.run
    if len(run.folders) == 1:
        f = run.folders[0]
        cfg = f"`{ctx.show(f.config_path)}`" if f.config_path.is_file() else "none (no config.yaml in the run folder)"
        return [
            f"# AgentPRM report: `{f.root.name}`",
            "",
            f"Run folder `{f.root}`; config: {cfg}. Environments: {', '.join(run.envs()) or 'none'}."
            + _cap_sentence(_episode_cap(f.config_path)),
            "",
        ]
    rows: list[list[str]] = []
    caps: list[str] = []  # each folder's episode cap, as the table shows it
    for f in run.folders:
        cfg = f"`{ctx.show(f.config_path)}`" if f.config_path.is_file() else "none"
        rows.append([f"`{f.root}`", ", ".join(f.envs()) or "none", cfg])
        cap = _episode_cap(f.config_path)
        caps.append(f"{cap} rounds" if cap else "the env's own" if f.config_path.is_file() else "unknown (no config)")
    header = ["run folder", "envs", "config"]
    if len(set(caps)) > 1:  # each folder's cap in its row; one line when they agree
        header.append("episode cap (`max_rounds`)")
        rows = [[*r, c] for r, c in zip(rows, caps)]
        cap_note = " Episode caps differ between the run folders (the table's last column)."
    else:
        cap_note = _cap_sentence(_episode_cap(run.folders[0].config_path), " in every run folder")
    return [
        f"# AgentPRM report: {', '.join(f'`{r.name}`' for r in roots)}",
        "",
        f"One report over {len(roots)} run folders; each env's results come from the folder that holds them. "
        f"Environments: {', '.join(run.envs()) or 'none'}.{cap_note}",
        "",
        *_table(header, rows),
        "",
    ]
