"""Step labels: TD-GAE (literal and next-step), PVM, ORM, MC."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentprm.labels import orm_labels, pvm_labels, td_gae_closed_form, td_gae_linear, td_gae_targets
from tests.test_trajectory import make_traj

qs = st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=12)
unit = st.floats(0, 1, allow_nan=False)


@given(qs, st.floats(-1, 1), unit, unit, st.sampled_from(["literal", "next"]))
def test_terminal_target_is_r(q, r, gamma, lam, bootstrap):
    assert td_gae_targets(q, r, gamma=gamma, lam=lam, bootstrap=bootstrap)[-1] == pytest.approx(r)


@given(qs, st.floats(-1, 1), st.sampled_from(["literal", "next"]))
def test_lambda_gamma_one_gives_pvm(q, r, bootstrap):
    np.testing.assert_allclose(td_gae_targets(q, r, gamma=1.0, lam=1.0, bootstrap=bootstrap), [r] * len(q), atol=1e-9)


@given(qs, st.floats(-1, 1), unit, unit)
def test_closed_form_equals_recursion(q, r, gamma, lam):
    np.testing.assert_allclose(
        td_gae_targets(q, r, gamma=gamma, lam=lam), td_gae_closed_form(q, r, gamma=gamma, lam=lam), atol=1e-9
    )


@given(qs, st.floats(-1, 1), unit, unit, st.sampled_from(["literal", "next"]))
@settings(max_examples=50)
def test_linear_form_equals_recursion(q, r, gamma, lam, bootstrap):
    W, c = td_gae_linear(len(q), gamma=gamma, lam=lam, bootstrap=bootstrap)
    np.testing.assert_allclose(
        W @ np.array(q) + c * r, td_gae_targets(q, r, gamma=gamma, lam=lam, bootstrap=bootstrap), atol=1e-9
    )


def test_lambda_zero_literal_copies_own_prediction_and_next_copies_successor():
    q = [0.1, 0.4, 0.9]
    np.testing.assert_allclose(td_gae_targets(q, 1.0, lam=0.0), [0.1, 0.4, 1.0])  # literal: no signal before T
    np.testing.assert_allclose(td_gae_targets(q, 1.0, lam=0.0, bootstrap="next"), [0.4, 0.9, 1.0])  # TD(0)


def test_hand_computed_literal_and_t0():
    # T = 2, γ = 1, λ = 0.5: Q̂_t = 0.5·Σ_k 0.5^k Q_{t+k} + 0.5^{T−t}·r
    q, r = [0.2, 0.6, 0.0], 1.0
    expect = [0.5 * (0.2 + 0.5 * 0.6) + 0.25, 0.5 * 0.6 + 0.5, 1.0]
    np.testing.assert_allclose(td_gae_targets(q, r, lam=0.5), expect)
    # t = 0 needs no V(s_0): the target does not depend on what Q_{-1} would be (it cancels)
    assert td_gae_targets([0.3], 0.7)[0] == pytest.approx(0.7)


def test_all_zero_predictions_give_discounted_outcome():
    np.testing.assert_allclose(td_gae_targets([0, 0, 0, 0], 1.0), [0.95**3, 0.95**2, 0.95, 1.0])


def test_orm_pvm_agentprm_differ_only_where_they_should():
    traj = make_traj(0, 4)
    traj.reward, traj.success = 0.6, False
    pvm, orm = pvm_labels(traj), orm_labels(traj)
    td = td_gae_targets([0.0] * 4, 0.6)
    assert pvm == [0.6] * 4
    assert orm == [None, None, None, 0.6]  # ORM: only the last step is labelled
    assert td[-1] == pvm[-1] == orm[-1]  # all agree at the terminal step
    assert all(a != b for a, b in zip(td[:-1], pvm[:-1]))  # and differ before it (λ < 1)
    assert pvm_labels(traj, binary=True) == [0.0] * 4  # binary outcome: success flag, not the raw reward
