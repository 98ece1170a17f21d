"""Per-turn reward forms (rl/rewards.py): hand-computed cases and the shaping identities."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentprm.rl.rewards import (
    dense_rewards,
    min_form_returns,
    min_form_rewards,
    outcome_rewards,
    potential_rewards,
    progress_rewards,
    shaping_telescope,
    turn_rewards,
)

Q = [0.2, 0.5, 0.4]


def test_outcome_hand():
    assert outcome_rewards(3, 1.0).tolist() == [0.0, 0.0, 1.0]


def test_potential_hand():
    # done: Φ = [0, .2, .5, 0]; γ = 1: F = [.2, .3, -.5]; + r at the end
    assert np.allclose(potential_rewards(Q, 1.0), [0.2, 0.3, 0.5])
    # γ = 0.5: F_t = .5·Φ_{t+1} − Φ_t = [.1, .25 - .2, 0 - .5]
    assert np.allclose(potential_rewards(Q, 1.0, gamma=0.5), [0.1, 0.05, 0.5])
    # truncated: Φ(s_{T+1}) = Q_T = .4: last F = .4 − .5
    assert np.allclose(potential_rewards(Q, 0.0, done=False), [0.2, 0.3, -0.1])


def test_dense_progress_min_hand():
    assert np.allclose(dense_rewards(Q, 1.0), [0.2, 0.5, 1.4])
    assert np.allclose(progress_rewards(Q, 1.0), [0.2, 0.3, 0.9])
    # G = [min(.2,.5,.4), min(.5,.4), .4] = [.2, .4, .4]; r' = [.2-.4, .4-.4, .4]
    assert np.allclose(min_form_returns(Q), [0.2, 0.4, 0.4])
    assert np.allclose(min_form_rewards(Q, 1.0), [-0.2, 0.0, 1.4])
    # soft-min tends to the min as τ → 0 and to the mean as τ → ∞
    assert np.allclose(min_form_returns(Q, 1e-4), [0.2, 0.4, 0.4], atol=1e-6)
    assert np.allclose(min_form_returns(Q, 1e6), [np.mean(Q), 0.45, 0.4], atol=1e-5)


def test_dispatch_and_errors():
    assert np.allclose(turn_rewards("potential", 1.0, Q), potential_rewards(Q, 1.0))
    assert turn_rewards("outcome", 2.0, n_turns=2).tolist() == [0.0, 2.0]
    with pytest.raises(ValueError, match="unknown shaping"):
        turn_rewards("nope", 1.0, Q)
    with pytest.raises(ValueError, match="needs the reward model"):
        turn_rewards("dense", 1.0)
    with pytest.raises(ValueError, match="3 step scores for 2"):
        turn_rewards("dense", 1.0, Q, n_turns=2)


floats = st.floats(-5, 5, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, min_size=1, max_size=12), floats, st.floats(0.1, 1.0), st.booleans(), floats)
def test_potential_shaping_telescopes(q, r, gamma, done, phi0):
    rew = potential_rewards(q, r, gamma=gamma, done=done, phi0=phi0)
    disc = gamma ** np.arange(len(q))
    expected = gamma ** (len(q) - 1) * r + shaping_telescope(q, gamma=gamma, done=done, phi0=phi0)
    assert np.isclose(np.sum(disc * rew), expected, atol=1e-9)
    if done and gamma == 1.0 and phi0 == 0.0:
        assert np.isclose(rew.sum(), r)  # shaping adds nothing to a finished episode's return


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, min_size=1, max_size=12), floats)
def test_min_form_returns_to_go(q, r):
    rew = min_form_rewards(q, r)
    to_go = np.cumsum(rew[::-1])[::-1]
    assert np.allclose(to_go - outcome_rewards(len(q), r)[::-1].cumsum()[::-1], [min(q[t:]) for t in range(len(q))])
    assert np.isclose(progress_rewards(q, r).sum(), q[-1] + r)
