"""The shared statistics: AUROC against a brute-force pair count, the paired bootstrap on hand-made tasks."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from agentprm.stats import auroc, grouped_auroc, paired_bootstrap

scores = st.lists(st.integers(0, 6).map(lambda v: v / 2), min_size=1, max_size=12)  # few values: many ties


def brute_force_auroc(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=200, deadline=None)
@given(scores, scores)
def test_auroc_is_the_pair_count(pos, neg):
    assert math.isclose(auroc(pos, neg), brute_force_auroc(pos, neg), abs_tol=1e-12)


def test_auroc_hand_cases_and_empty_side():
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5, 0.5], [0.5]) == 0.5
    assert math.isnan(auroc([], [0.3]))


def test_bootstrap_uses_only_common_tasks_and_says_so():
    a = {"t1": 100.0, "t2": 100.0, "t3": 0.0, "only_a": 100.0}
    b = {"t1": 0.0, "t2": 100.0, "t3": 0.0, "only_b": 0.0, "only_b2": 0.0}
    d = paired_bootstrap(a, b)
    assert d.tasks == 3 and d.only_a == 1 and d.only_b == 2
    assert math.isclose(d.mean_a, 200 / 3) and math.isclose(d.mean_b, 100 / 3) and math.isclose(d.diff, 100 / 3)
    assert d.lo >= 0.0 and d.hi <= 100.0 and d.lo <= d.diff <= d.hi
    assert "3 tasks; 3 task(s) only one side has left out" in str(d)
    assert paired_bootstrap({"x": 1.0}, {"y": 1.0}) is None


def test_bootstrap_is_seeded_and_separates_a_clear_difference():
    a = {f"t{i}": 100.0 * (i % 10 < 7) for i in range(60)}  # 70%
    b = {f"t{i}": 100.0 * (i % 10 < 2) for i in range(60)}  # 20%, every b success also an a success
    d1, d2 = paired_bootstrap(a, b, seed=3), paired_bootstrap(a, b, seed=3)
    assert d1 == d2
    assert math.isclose(d1.diff, 50.0) and d1.sign == 1 and 35 < d1.lo < 50 < d1.hi < 65
    same = paired_bootstrap(a, a)
    assert same.lo == same.hi == 0.0 and same.sign == 0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=30))
def test_bootstrap_interval_contains_the_mean_difference(pairs):
    a = {f"t{i}": x for i, (x, _) in enumerate(pairs)}
    b = {f"t{i}": y for i, (_, y) in enumerate(pairs)}
    d = paired_bootstrap(a, b, n_boot=200)
    diffs = [x - y for x, y in pairs]
    assert min(diffs) - 1e-9 <= d.lo <= d.hi <= max(diffs) + 1e-9
    swapped = paired_bootstrap(b, a, n_boot=200)
    assert math.isclose(swapped.diff, -d.diff, abs_tol=1e-12)


@given(
    st.lists(
        st.tuples(
            st.lists(st.floats(-5, 5), max_size=5),
            st.lists(st.floats(-5, 5), max_size=5),
        ),
        max_size=6,
    )
)
def test_grouped_auroc_counts_only_pairs_within_a_group(groups):
    pairs = [(p, n) for pos, neg in groups for p in pos for n in neg]
    got = grouped_auroc(groups)
    if not pairs:
        assert math.isnan(got)
    else:
        want = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
        assert math.isclose(got, want, abs_tol=1e-12)


def test_grouped_auroc_sees_what_pooling_hides():
    # easy task: every candidate scores high; hard task: every candidate scores low; within each task the
    # failures score above the successes. Pooled, successes (mostly on the easy task) look better.
    easy = ([0.8, 0.8, 0.8], [0.9])
    hard = ([0.1], [0.2, 0.2, 0.2])
    pooled = auroc(easy[0] + hard[0], easy[1] + hard[1])
    assert pooled > 0.5 and grouped_auroc([easy, hard]) == 0.0
