"""MC labels over scripted env + policy: hard any-success, soft mean, token cost, terminal steps."""

import random

import pytest

from agentprm.labels.mc import ReplayMismatch, RolloutOutcome, mc_label_trajectories, policy_rollout_fn
from agentprm.testing.fakes import ScriptedEnv, ScriptedPolicy
from tests.prm_helpers import scripted_trajectory


def oracle(conv, rng):
    """Types the next correct word (the number of "Good." answers says how far we are)."""
    task_k = int(conv[2]["content"].split()[1])
    typed = sum(1 for m in conv if m["role"] == "user" and m["content"].startswith("Good"))
    return "abcdefgh"[min(typed, task_k - 1)]


def test_oracle_rollouts_label_every_step_one_and_count_tokens():
    traj = scripted_trajectory("line_3_0", 0.0, random.Random(0), max_rounds=6)  # all wrong: fails
    assert not traj.success and traj.num_steps == 6
    policy = ScriptedPolicy(oracle)
    (res,) = mc_label_trajectories([traj], lambda: ScriptedEnv(max_rounds=6), policy_rollout_fn(policy), n_mc=4)
    # From s_{t+1} with 6-(t+1) rounds left the oracle needs 3: steps 0..2 can still succeed, 3..4 cannot,
    # and the last step is labelled by the (failed) outcome.
    assert res.labels == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert res.rollouts == 4 * 5
    per_turn = len("Thought: I type a.\nAction: a".split()) + 1
    # rollouts from s_{t+1}: min(3, rounds_left) turns each
    turns = sum(min(3, 6 - (t + 1)) for t in range(5))
    assert res.rollout_tokens == 4 * turns * per_turn
    assert res.seed_tokens == sum(s.generated_tokens for s in traj.steps)


def test_hard_is_any_success_soft_is_mean():
    traj = scripted_trajectory("line_1_0", 0.0, random.Random(0), max_rounds=3)
    calls = []

    def rollout_fn(starts, n):
        calls.append(len(starts))
        # first rollout of each start succeeds, the others fail
        return [[RolloutOutcome(1.0 if j == 0 else 0.0, j == 0, 2) for j in range(n)] for _ in starts]

    make = lambda: ScriptedEnv(max_rounds=3)  # noqa: E731
    (hard,) = mc_label_trajectories([traj], make, rollout_fn, n_mc=4)
    (soft,) = mc_label_trajectories([traj], make, rollout_fn, n_mc=4, soft=True)
    assert hard.labels == [1.0, 1.0, 0.0]
    assert soft.labels == [0.25, 0.25, 0.0]
    assert calls == [2, 2]  # one batched call per chunk, every step's starts together


def test_error_rollouts_are_left_out_not_counted_as_failures():
    traj = scripted_trajectory("line_1_0", 0.0, random.Random(0), max_rounds=2)

    def rollout_fn(starts, n):
        return [[RolloutOutcome(0.0, False, 1, "env_error"), RolloutOutcome(1.0, True, 1)] for _ in starts]

    (res,) = mc_label_trajectories([traj], lambda: ScriptedEnv(max_rounds=2), rollout_fn, n_mc=2, soft=True)
    assert res.labels == [1.0, 0.0] and res.rollout_errors == 1


def test_replay_mismatch_is_an_error():
    traj = scripted_trajectory("line_2_0", 1.0, random.Random(0))
    traj.steps[1].observation = "something else"
    with pytest.raises(ReplayMismatch):
        list(mc_label_trajectories([traj], ScriptedEnv, lambda s, n: [], n_mc=1))


def test_seeded_labels_do_not_depend_on_which_trajectories_share_a_chunk():
    from tests.search_fakes import KeyedPolicy

    rng = random.Random(1)
    trajs = [scripted_trajectory(f"line_{k}_{i}", 0.3, rng, max_rounds=6, i=i) for i, k in enumerate([2, 3, 4, 3])]
    label = lambda chunk: [  # noqa: E731
        (r.labels, r.rollout_tokens)
        for r in mc_label_trajectories(
            trajs,
            lambda: ScriptedEnv(max_rounds=6),
            policy_rollout_fn(KeyedPolicy(0.4), seed=5),
            n_mc=3,
            soft=True,
            chunk=chunk,
        )
    ]
    together, alone = label(4), label(1)
    assert together == alone
    assert any(0.0 < x < 1.0 for labels, _ in together for x in labels)  # the rollouts did sample
