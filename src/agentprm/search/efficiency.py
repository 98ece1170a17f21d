"""The compute-efficiency ratio behind the paper's "AgentPRM is 8× more compute-efficient" (design.md).

The paper gives no formula (§9.9); compute there is the number of best-of-n samples. Our definition:
for each budget N of AgentPRM's best-of-n curve, take the level L it reaches there; the ratio is the
smallest budget at which the baseline reaches L over the smallest budget at which AgentPRM reaches L
(both curves interpolated linearly in log2 N, first crossing). A ratio of 8 at N = 8 means the baseline
needs 64 samples for what AgentPRM does with 8. Comparing the two first crossings (not the baseline's
crossing against N itself) keeps plateaus honest: two identical curves are 1x at every N, flat or not.
When the baseline never reaches L within its largest budget the ratio is open-ended: "> max/N'". Where
AgentPRM solved nothing at N the ratio is undefined ("n/a"): every curve starts at 0, so "the budget
to reach 0" is the smallest one and the ratio would read 1/N whatever the RMs do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Ratio:
    n: int  # AgentPRM's budget
    target: float  # AgentPRM's success at n
    baseline_budget: float | None  # the baseline's (interpolated) budget for `target`; None: never within its curve
    baseline_max: int  # the baseline curve's largest budget
    agent_budget: float | None = None  # AgentPRM's own first budget reaching `target` (<= n); None: n

    @property
    def own_budget(self) -> float:
        return float(self.n) if self.agent_budget is None else self.agent_budget

    @property
    def defined(self) -> bool:
        return self.target > 0

    @property
    def value(self) -> float | None:
        """baseline budget / AgentPRM's budget for the same level; None when open-ended (never reached) or
        undefined (see `defined`)."""
        if not self.defined or self.baseline_budget is None:
            return None
        return self.baseline_budget / self.own_budget

    @property
    def lower_bound(self) -> float:
        """The open-ended ratio's bound (baseline's largest budget / AgentPRM's), else the value."""
        return self.value if self.value is not None else self.baseline_max / self.own_budget

    def __str__(self) -> str:
        if not self.defined:
            return "n/a"
        if self.value is None:
            return f"> {self.baseline_max / self.own_budget:.3g}x"
        return f"{self.value:.3g}x"


def budget_to_reach(curve: Mapping[int, float], target: float) -> float | None:
    """The smallest budget at which `curve` (budget -> success) first reaches `target`, interpolated
    linearly in log2(budget) between the two budgets around the crossing; None when it never does.
    A target already reached at the smallest budget gives that budget (no extrapolation below it)."""
    points = sorted(curve.items())
    if not points:
        return None
    if points[0][1] >= target:
        return float(points[0][0])
    for (n0, s0), (n1, s1) in zip(points, points[1:]):
        if s1 >= target:
            x0, x1 = math.log2(n0), math.log2(n1)
            frac = (target - s0) / (s1 - s0)  # s1 >= target > s0, so s1 > s0
            return float(2 ** (x0 + frac * (x1 - x0)))
    return None


def efficiency_ratios(agent: Mapping[int, float], baseline: Mapping[int, float]) -> list[Ratio]:
    """For each budget of `agent`'s curve, how many times AgentPRM's budget `baseline` needs for the same level."""
    bmax = max(baseline) if baseline else 0
    return [
        Ratio(n, s, budget_to_reach(baseline, s), bmax, budget_to_reach(agent, s)) for n, s in sorted(agent.items())
    ]


def mean_curve(curves: list[Mapping[int, float]]) -> dict[int, float]:
    """The average over envs of several curves, on the budgets they all have (the paper's Fig. 1 curve)."""
    if not curves:
        return {}
    common = set(curves[0]).intersection(*curves[1:])
    return {n: sum(c[n] for c in curves) / len(curves) for n in sorted(common)}
