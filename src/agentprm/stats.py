"""Statistics the report and the benchmarks share: a paired bootstrap over tasks and AUROC.

Every difference the report states ("AgentPRM 55.2 vs ORM 51.0") is a difference of per-task means on the
same test tasks, so its uncertainty is the task sample's: `paired_bootstrap` resamples tasks (with
replacement, seeded) and takes the percentile interval of the mean difference. It pairs by task id and
uses only the tasks both sides have, and says how many it left out, so two result files over different
task sets are never compared as if they were one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

N_BOOT = 2000  # resamples; seeded, so a report rebuilt from the same files shows the same intervals
LEVEL = 0.95


@dataclass(frozen=True)
class PairedDiff:
    """mean(a) − mean(b) over the tasks both have, with a bootstrap interval at `level`."""

    mean_a: float
    mean_b: float
    lo: float
    hi: float
    tasks: int  # tasks both sides have (the ones compared)
    only_a: int  # tasks left out because only `a` has them
    only_b: int
    level: float = LEVEL

    @property
    def diff(self) -> float:
        return self.mean_a - self.mean_b

    @property
    def sign(self) -> int:
        """+1 when the whole interval is above 0, −1 when below, 0 when it contains 0 (no clear difference)."""
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0

    def interval(self) -> str:
        return f"[{self.lo:+.1f}, {self.hi:+.1f}]"

    def __str__(self) -> str:
        left = self.only_a + self.only_b
        note = f"; {left} task(s) only one side has left out" if left else ""
        return f"{self.diff:+.1f}, {self.level:.0%} CI {self.interval()} ({self.tasks} tasks{note})"


def paired_bootstrap(
    a: Mapping[str, float], b: Mapping[str, float], *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL
) -> PairedDiff | None:
    """The mean difference a − b over the task ids both mappings have, and its percentile bootstrap interval
    (tasks resampled with replacement, `n_boot` times, seeded: the same inputs give the same interval).
    None when no task is in both."""
    import numpy as np

    common = sorted(set(a) & set(b))
    if not common:
        return None
    va = np.array([a[t] for t in common], dtype=float)
    vb = np.array([b[t] for t in common], dtype=float)
    d = va - vb
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    means = d[idx].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return PairedDiff(
        float(va.mean()),
        float(vb.mean()),
        float(lo),
        float(hi),
        len(common),
        len(set(a) - set(b)),
        len(set(b) - set(a)),
        level,
    )


def grouped_auroc(groups: Sequence[tuple[Sequence[float], Sequence[float]]]) -> float:
    """AUROC over pairs within a group only: P(a positive scores above a negative OF THE SAME GROUP), ties
    ½, pooling every group's pairs (Σ U_g / Σ n_g·m_g). NaN when no group has both sides.

    Best-of-N ranks the candidates of one task against each other, so this is the AUC that predicts it; a
    pooled AUC also rewards scores that only tell easy tasks from hard ones."""
    u = pairs = 0.0
    for pos, neg in groups:
        if pos and neg:
            u += auroc(pos, neg) * len(pos) * len(neg)
            pairs += len(pos) * len(neg)
    return u / pairs if pairs else float("nan")


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """P(a random positive scores above a random negative), ties counting ½ (Mann-Whitney U / (n·m));
    NaN when either side is empty. O((n + m) log(n + m)) by ranks."""
    if not pos or not neg:
        return float("nan")
    ranked = sorted([(float(v), 1) for v in pos] + [(float(v), 0) for v in neg])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        avg_rank = (i + j + 1) / 2  # 1-based average rank of the tie block
        rank_sum += avg_rank * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n, m = len(pos), len(neg)
    return (rank_sum - n * (n + 1) / 2) / (n * m)
