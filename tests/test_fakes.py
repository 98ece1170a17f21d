"""The scripted fakes keep the protocols' promises (the search and rollout tests rely on them)."""

from __future__ import annotations

from agentprm.rollout import RolloutConfig, new_episode, run_episodes
from agentprm.testing import ScriptedEnv, ScriptedPolicy

CONVS = [[{"role": "user", "content": f"task {i}"}] for i in range(5)]


def _random_word(conv, rng):
    return rng.choice("abcdefghij")


def _words(gens):
    return [[g.text for g in row] for row in gens]


def test_scripted_policy_samples_do_not_depend_on_batching():
    policy = ScriptedPolicy(_random_word)
    seeds = [11, 12, 13, 14, 15]
    whole = _words(policy.generate(CONVS, n=4, seed=seeds))
    # each conversation alone, and the batch reversed, give the same samples per conversation
    alone = [_words(policy.generate([c], n=4, seed=[s]))[0] for c, s in zip(CONVS, seeds)]
    reversed_ = _words(policy.generate(CONVS[::-1], n=4, seed=seeds[::-1]))[::-1]
    assert whole == alone == reversed_
    assert len({tuple(r) for r in whole}) > 1  # the seeds matter: not one fixed script


def test_scripted_rollouts_identical_across_batch_sizes():
    policy = ScriptedPolicy(lambda conv, rng: rng.choice("ab"))
    tasks = ScriptedEnv(n_train=8).task_ids("train")

    def run(batch_size):
        eps = [new_episode(ScriptedEnv(max_rounds=4), u, traj_id=f"{u}#{i}", seed=100 + i) for i, u in enumerate(tasks)]
        cfg = RolloutConfig(temperature=1.0, max_new_tokens=8, batch_size=batch_size)
        return {ep.traj.id: ep.traj.to_dict() for ep in run_episodes(policy, eps, cfg)}

    assert run(1) == run(3) == run(8)
