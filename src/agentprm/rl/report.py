"""Figure 5's shape: test-split success (BabyAI: mean reward) against PPO iteration, per reward type.

RL runs live anywhere under `<run>/rl/` (the script `scripts/rl_figure5.sh` writes
`<run>/rl/<label>-s<seed>/`); each is found by its `metrics.jsonl` + `rl_config.json` (written by
`agentprm rl`). Runs with the same env and label are seeds of one curve: the plot shows their mean
and a min-max band, at the iterations every seed has evaluated.

`rl_section(run_dirs, plots_dir)` returns the report's markdown lines (empty when no RL run exists) and
writes `plots/rl_<env>.png`; the report calls it once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agentprm.rl.ppo import CONFIG_FILE, METRICS_FILE

ORDER = ("outcome", "orm", "pvm", "agentprm")  # the paper's legend order; others follow


@dataclass
class RLRun:
    path: Path
    env: str
    label: str
    seed: int
    complete: bool
    rows: list[dict] = field(default_factory=list)

    def curve(self, metric: str) -> dict[int, float]:
        key = "test_reward" if metric == "reward" else "test_success"
        return {r["iteration"]: float(r[key]) for r in self.rows if r.get(key) is not None}


def find_rl_runs(run_dirs: Sequence[str | Path]) -> list[RLRun]:
    runs = []
    for root in run_dirs:
        base = Path(root) / "rl"
        if not base.is_dir():
            continue
        for mfile in sorted(base.rglob(METRICS_FILE)):
            cfile = mfile.parent / CONFIG_FILE
            if not cfile.is_file():
                continue
            info = json.loads(cfile.read_text())
            rows = [json.loads(x) for x in mfile.read_text().splitlines() if x.strip()]
            cfg = info.get("config", {})
            runs.append(
                RLRun(
                    mfile.parent,
                    info.get("env", cfg.get("env", "?")),
                    info.get("label", "?"),
                    int(cfg.get("seed", 0)),
                    bool(info.get("complete")),
                    rows,
                )
            )
    return runs


def _metric(env: str) -> str:
    from agentprm.envs import REGISTRY

    spec = REGISTRY.get(env)
    return spec.metric if spec is not None else "success"


def aggregate(runs: Sequence[RLRun], metric: str) -> dict[int, tuple[float, float, float, int]]:
    """iteration -> (mean, min, max, seeds) over the runs, at iterations all of them evaluated."""
    curves = [r.curve(metric) for r in runs]
    common = set.intersection(*(set(c) for c in curves)) if curves else set()
    out = {}
    for it in sorted(common):
        v = np.array([c[it] for c in curves])
        out[it] = (float(v.mean()), float(v.min()), float(v.max()), len(v))
    return out


def _sort_key(label: str) -> tuple[int, str]:
    return (ORDER.index(label) if label in ORDER else len(ORDER), label)


def rl_section(run_dirs: Sequence[str | Path], plots_dir: str | Path) -> list[str]:
    """Markdown lines for the report (a table and a plot per env); [] when there are no RL runs."""
    runs = find_rl_runs(run_dirs)
    if not runs:
        return []
    plots = Path(plots_dir)
    plots.mkdir(parents=True, exist_ok=True)
    lines = ["## RL: PPO with outcome and reward-model rewards (Figure 5)", ""]
    for env in sorted({r.env for r in runs}):
        metric = _metric(env)
        by_label: dict[str, list[RLRun]] = {}
        for r in runs:
            if r.env == env:
                by_label.setdefault(r.label, []).append(r)
        series = {lab: aggregate(rs, metric) for lab, rs in sorted(by_label.items(), key=lambda kv: _sort_key(kv[0]))}
        what = "mean reward" if metric == "reward" else "success rate"
        lines += [
            f"### {env}: greedy test {what} vs PPO iteration",
            "",
            "| reward | seeds (complete) | first | final (mean [min, max]) | std over iterations of the mean |",
            "|---|---|---|---|---|",
        ]
        for lab, pts in series.items():
            rs = by_label[lab]
            if pts:
                its = sorted(pts)
                first, last = pts[its[0]], pts[its[-1]]
                wobble = float(np.std(np.diff([pts[i][0] for i in its]))) if len(its) > 2 else float("nan")
                lines.append(
                    f"| {lab} | {len(rs)} ({sum(r.complete for r in rs)}) | {first[0]:.3f} @{its[0]} | "
                    f"{last[0]:.3f} [{last[1]:.3f}, {last[2]:.3f}] @{its[-1]} | {wobble:.3f} |"
                )
            else:
                lines.append(f"| {lab} | {len(rs)} ({sum(r.complete for r in rs)}) | - | - | - |")
        png = plots / f"rl_{env}.png"
        _plot(png, f"{env}: PPO, greedy test {what}", series, what)
        lines += [
            "",
            f"![rl {env}](plots/{png.name})",
            "",
            "Band: min-max over seeds, at iterations every seed evaluated. The last column is the spread of "
            "iteration-to-iteration changes of the mean curve (lower: steadier learning).",
            "",
        ]
    return lines


def _plot(path: Path, title: str, series: dict[str, dict[int, tuple[float, float, float, int]]], ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for lab, pts in series.items():
        if not pts:
            continue
        its = sorted(pts)
        mean = [pts[i][0] for i in its]
        ax.plot(its, mean, marker="o", ms=3, label=f"{lab} (n={pts[its[-1]][3]})")
        ax.fill_between(its, [pts[i][1] for i in its], [pts[i][2] for i in its], alpha=0.2)
    ax.set_xlabel("PPO iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
