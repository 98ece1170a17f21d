"""The compute-efficiency ratio on hand-made curves."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from agentprm.search import budget_to_reach, efficiency_ratios, mean_curve


def test_baseline_needing_eight_times_the_samples_gives_8x():
    agent = {1: 0.20, 2: 0.30, 4: 0.40, 8: 0.50}
    baseline = {1: 0.10, 2: 0.15, 4: 0.18, 8: 0.20, 16: 0.30, 32: 0.40, 64: 0.50}
    ratios = efficiency_ratios(agent, baseline)
    assert [r.value for r in ratios] == [8.0, 8.0, 8.0, 8.0]
    assert str(ratios[0]) == "8x"


def test_interpolation_is_linear_in_log2_budget():
    baseline = {8: 0.2, 16: 0.3}
    assert math.isclose(budget_to_reach(baseline, 0.25), 2**3.5)
    assert budget_to_reach(baseline, 0.2) == 8.0
    assert budget_to_reach(baseline, 0.1) == 8.0  # reached at the smallest budget: no extrapolation below it


def test_never_reached_is_open_ended():
    agent = {1: 0.2, 16: 0.9}
    baseline = {1: 0.2, 2: 0.3, 64: 0.5}
    r1, r16 = efficiency_ratios(agent, baseline)
    assert r1.value == 1.0
    assert r16.value is None and r16.baseline_budget is None
    assert str(r16) == "> 4x"


def test_first_crossing_of_a_non_monotone_baseline():
    baseline = {1: 0.1, 2: 0.5, 4: 0.3, 8: 0.6}  # degrades after N = 2, as ORM/PVM do in the paper
    assert math.isclose(budget_to_reach(baseline, 0.3), 2**0.5)
    assert math.isclose(budget_to_reach(baseline, 0.55), 2 ** (2 + 0.25 / 0.3))


def test_an_rm_equal_to_the_baseline_has_ratio_one_everywhere_even_on_a_plateau():
    # Issue 17 item 4: the old definition (baseline budget / N) read 0.5x at N = 8 here, and 0.25x at N = 16 on
    # the default run's identical flat curves. Comparing both curves' first crossings gives 1x.
    curve = {1: 0.1, 2: 0.2, 4: 0.3, 8: 0.3}
    assert [r.value for r in efficiency_ratios(curve, curve)] == [1.0, 1.0, 1.0, 1.0]
    flat = {1: 0.05, 2: 0.15, 4: 0.15, 8: 0.15, 16: 0.15}
    assert [str(r) for r in efficiency_ratios(flat, flat)] == ["1x"] * 5


def test_plateau_of_agentprm_against_a_slower_baseline():
    agent = {1: 0.2, 2: 0.4, 4: 0.4, 8: 0.4, 16: 0.4, 32: 0.4, 64: 0.4}  # reaches its plateau at 2
    baseline = {1: 0.1, 2: 0.2, 4: 0.3, 8: 0.4, 16: 0.4, 32: 0.4, 64: 0.4}  # reaches it at 8
    assert [r.value for r in efficiency_ratios(agent, baseline)][1:] == [4.0] * 6
    never = {n: 0.3 for n in agent}
    r = efficiency_ratios(agent, never)[-1]
    assert r.value is None and str(r) == "> 32x" and r.lower_bound == 32.0  # 64 / 2: AgentPRM's own budget is 2


@given(
    st.lists(st.floats(0.001, 0.2), min_size=2, max_size=7),
    st.integers(0, 4),
)
def test_shifting_a_curve_by_2_to_the_k_gives_ratio_2_to_the_k(increments, k):
    values = [sum(increments[: i + 1]) for i in range(len(increments))]  # strictly increasing
    agent = {2**i: v for i, v in enumerate(values)}
    baseline = {2 ** (i + k): v for i, v in enumerate(values)}
    if k:
        baseline[1] = 0.0  # starts below everything agent reaches
    for r in efficiency_ratios(agent, baseline):
        assert math.isclose(r.value, 2**k, rel_tol=1e-9)


def test_mean_curve_uses_common_budgets():
    assert mean_curve([{1: 0.2, 2: 0.4, 4: 0.5}, {1: 0.4, 2: 0.6}]) == {1: 0.30000000000000004, 2: 0.5}


def test_no_success_has_no_ratio():
    # Flat at 0: "the budget to reach 0" is the smallest budget, which would read 1/N whatever the RMs do.
    zero = {1: 0.0, 4: 0.0, 16: 0.0}
    ratios = efficiency_ratios(zero, {1: 0.0, 4: 0.1, 16: 0.2})
    assert [r.defined for r in ratios] == [False] * 3
    assert all(r.value is None and str(r) == "n/a" for r in ratios)
    some = efficiency_ratios({1: 0.0, 4: 0.2}, {1: 0.0, 4: 0.0})
    assert not some[0].defined and some[1].defined and str(some[1]) == "> 1x"
