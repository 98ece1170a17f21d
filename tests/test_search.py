"""Search strategies on the scripted env, where the optimum is known, with content-seeded fakes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentprm.search import (
    BeamConfig,
    BestOfNConfig,
    Candidate,
    GreedyConfig,
    RandomRewardModel,
    aggregate,
    beam_search,
    best_of_n,
    bon_curve,
    budgets_upto,
    greedy,
    select,
)
from agentprm.testing import ScriptedRewardModel
from agentprm.testing.fakes import WORDS
from tests.search_fakes import DECEIVER, ORACLE, PROGRESS, KeyedPolicy, keyed_rng, make_env

TASKS = ["line_1_0", "line_2_1", "line_3_2", "line_4_3", "line_4_4"]


def _key(results):
    return [(r.task_id, [s.output for s in r.trajectory.steps], r.score, r.success) for r in results]


# -- beam search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("finished", ["compete", "reserve"])
@pytest.mark.parametrize("dedup", [False, True])
def test_beam_with_oracle_scorer_finds_the_shortest_solution(finished, dedup):
    # 8 samples a node at p = 0.5: the right word is among them (at these seeds), so the optimum is reachable
    cfg = BeamConfig(beam_width=2, expansions=8, seed=3, finished=finished, dedup=dedup)
    results = beam_search(KeyedPolicy(0.5), ORACLE, make_env, TASKS, cfg)
    for r in results:
        k = int(r.task_id.split("_")[1])
        assert r.success and r.trajectory.status == "done"
        assert [s.action for s in r.trajectory.steps] == list(WORDS[:k])  # the optimum: no wasted step
        assert r.scores == [1.0] * k and r.score == 1.0


def test_beam_follows_its_scorer_so_a_deceptive_scorer_fails():
    tasks = [f"line_4_{i}" for i in range(6)]
    good = beam_search(KeyedPolicy(0.5), ORACLE, make_env, tasks, BeamConfig(2, 4, seed=1))
    bad = beam_search(KeyedPolicy(0.5), DECEIVER, make_env, tasks, BeamConfig(2, 4, seed=1))
    assert all(r.success for r in good)
    assert not any(r.success for r in bad)  # it keeps the wrong words whenever it is offered one


def test_beam_makes_one_policy_call_per_round_for_all_tasks():
    policy = KeyedPolicy(0.4)
    results = beam_search(policy, ORACLE, make_env, TASKS, BeamConfig(2, 4, seed=3))
    assert policy.calls == max(r.trajectory.num_steps for r in results)  # 4 rounds for the longest task


def test_beam_compute_counts_every_expansion():
    cfg = BeamConfig(beam_width=2, expansions=2, seed=0, root_copies="1")
    (r,) = beam_search(KeyedPolicy(0.5), DECEIVER, make_env, ["line_4_3"], cfg)
    # round 0 expands the root (2 actions), the next 5 rounds 2 live nodes x 2 actions: 22 generations,
    # 5 generated tokens each; the 2 kept candidates are stepped every round (none ends before round 6).
    assert r.trajectory.num_steps == 6
    assert r.compute.policy_generated_tokens == 5 * (2 + 5 * 4)
    assert r.compute.env_steps == 2 * 6
    assert r.compute.prm_tokens > 0
    assert r.trajectory.compute.env_steps == r.trajectory.num_steps  # the chosen path's own cost


def test_root_copies_literal_samples_m_squared_actions_at_the_root():
    cfg = BeamConfig(beam_width=1, expansions=3, seed=0, root_copies="M")
    (r,) = beam_search(KeyedPolicy(0.5), ORACLE, make_env, ["line_1_0"], cfg)
    assert r.compute.policy_generated_tokens == 5 * 9


# -- best-of-n -----------------------------------------------------------------------------------------


def test_best_of_n_picks_the_highest_last_step_score():
    results = best_of_n(KeyedPolicy(0.3), ORACLE, make_env, TASKS, BestOfNConfig(n=8, seed=5))
    for r in results:
        cands = [Candidate.from_dict(d) for d in r.details["candidates"]]
        assert len(cands) == 8
        best = max(c.scores[-1] for c in cands)
        assert r.score == best == r.scores[-1]
        assert cands[r.details["chosen"]].success == r.success
        assert r.compute.policy_generated_tokens == sum(c.compute.policy_generated_tokens for c in cands)


def test_best_of_n_samples_do_not_depend_on_how_many_run_at_once():
    from agentprm.search.best_of_n import sample_candidates

    def run(live):
        policy = KeyedPolicy(0.4)
        policy.batch_size = live  # live episodes per round (HFPolicy's batch size)
        groups = sample_candidates(policy, make_env, TASKS, BestOfNConfig(n=6, seed=2))
        return [[(t.id, [s.output for s in t.steps], t.success) for t in g] for g in groups], policy.calls

    (few, calls_few), (all_at_once, calls_all) = run(5), run(1000)
    assert few == all_at_once and calls_few > calls_all  # same samples; more, smaller rounds


def test_best_of_n_with_oracle_beats_random_scorer():
    # the scripted tasks of one length look the same to the policy, so vary the seed instead
    oracle, rand = [], []
    for seed in range(16):
        cfg = BestOfNConfig(n=8, seed=seed)
        oracle += best_of_n(KeyedPolicy(0.4), PROGRESS, make_env, ["line_4_0"], cfg)
        rand += best_of_n(KeyedPolicy(0.4), RandomRewardModel(seed), make_env, ["line_4_0"], cfg)
    # the progress scorer gives 1.0 exactly to solved trajectories, so it reaches oracle@8
    solvable = sum(any(c["success"] for c in r.details["candidates"]) for r in oracle)
    assert sum(r.success for r in oracle) == solvable
    assert sum(r.success for r in rand) < solvable


_cand = st.builds(
    lambda s, ok: Candidate(ok, float(ok), "done", s),
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=4),
    st.booleans(),
)


@given(
    st.lists(_cand, min_size=1, max_size=12), st.integers(1, 12), st.sampled_from(["last", "min", "mean", "product"])
)
def test_select_is_the_first_argmax_of_the_aggregated_score(cands, n, how):
    i = select(cands, n, how)
    pool = cands[:n]
    best = max(aggregate(c.scores, how) for c in pool)
    assert i < len(pool) and aggregate(pool[i].scores, how) == best
    assert all(aggregate(c.scores, how) < best for c in pool[:i])


def test_select_ranks_env_errors_last():
    cands = [Candidate(False, 0.0, "env_error", [9.0]), Candidate(False, 0.0, "max_rounds", [0.1])]
    assert select(cands) == 1


@given(st.lists(st.lists(_cand, min_size=16, max_size=16), min_size=1, max_size=5))
def test_bon_curve_uses_prefixes_and_oracle_bounds_selection(groups):
    points = bon_curve(groups, budgets_upto(16))
    assert [p.n for p in points] == [1, 2, 4, 8, 16]
    for p in points:
        assert p.success <= p.oracle_success
        direct = sum(g[select(g[: p.n])].success for g in groups) / len(groups)
        assert p.success == direct
    assert all(a.oracle_success <= b.oracle_success for a, b in zip(points, points[1:]))
    assert points[0].success == points[0].oracle_success  # one candidate: nothing to choose


def test_aggregations():
    assert aggregate([0.2, 0.9, 0.5], "last") == 0.5
    assert aggregate([0.2, 0.9, 0.5], "min") == 0.2
    assert math.isclose(aggregate([0.2, 0.9, 0.5], "mean"), 1.6 / 3)
    assert math.isclose(aggregate([0.2, 0.9, 0.5], "product"), 0.09)
    assert aggregate([], "last") == -math.inf
    with pytest.raises(ValueError):
        aggregate([1.0], "max")


# -- batched == task by task ---------------------------------------------------------------------------


def test_greedy_solves_with_a_greedy_right_policy_and_batches_equal_single():
    batched = greedy(KeyedPolicy(0.0), make_env, TASKS, GreedyConfig())
    assert all(r.success for r in batched)  # T = 0 -> the keyed policy always says the right word
    single = [r for t in TASKS for r in greedy(KeyedPolicy(0.0), make_env, [t], GreedyConfig())]
    assert _key(batched) == _key(single)


@pytest.mark.parametrize("seed", [0, 7])
def test_batched_search_equals_task_by_task(seed):
    rm = ScriptedRewardModel(lambda conv: keyed_rng(seed, repr(conv)).random())  # random but content-keyed
    cfg_beam = BeamConfig(2, 3, seed=seed)
    cfg_bon = BestOfNConfig(n=4, seed=seed)
    beam_b = beam_search(KeyedPolicy(0.5), rm, make_env, TASKS, cfg_beam)
    beam_s = [r for t in TASKS for r in beam_search(KeyedPolicy(0.5), rm, make_env, [t], cfg_beam)]
    assert _key(beam_b) == _key(beam_s)
    assert [r.compute for r in beam_b] == [r.compute for r in beam_s]
    bon_b = best_of_n(KeyedPolicy(0.5), rm, make_env, TASKS, cfg_bon)
    bon_s = [r for t in TASKS for r in best_of_n(KeyedPolicy(0.5), rm, make_env, [t], cfg_bon)]
    assert _key(bon_b) == _key(bon_s)
    assert [r.details for r in bon_b] == [r.details for r in bon_s]


def test_random_rm_is_a_function_of_the_prefix():
    rm = RandomRewardModel(3)
    conv = [
        {"role": "user", "content": "sys"},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "o0"},
        {"role": "assistant", "content": "a0"},
        {"role": "user", "content": "o1"},
        {"role": "assistant", "content": "a1"},
    ]
    (full,) = rm.score([conv])
    assert len(full.scores) == 2 and all(0 <= s < 1 for s in full.scores)
    assert rm.score_candidates(conv[:5], ["a1", "zz"]).scores[0] == full.scores[1]
    assert rm.score([conv[:4]])[0].scores == full.scores[:1]


def test_best_of_n_samples_are_the_collect_episodes_at_the_same_seed(tmp_path):
    # one rollout engine, one seed scheme: sample j of task u is episode u#j of `collect`
    from agentprm.rollout import RolloutConfig
    from agentprm.rollout.jobs import rollout_tasks
    from agentprm.search import sample_candidates
    from agentprm.trajectory import read_trajectories

    groups = sample_candidates(KeyedPolicy(0.5), make_env, TASKS, BestOfNConfig(n=3, seed=4))
    rollout_tasks(KeyedPolicy(0.5), make_env, TASKS, tmp_path / "c.jsonl", n_per_task=3, cfg=RolloutConfig(0.7), seed=4)
    collected = {t.id: t for t in read_trajectories(tmp_path / "c.jsonl")}
    for u, group in zip(TASKS, groups, strict=True):
        for j, traj in enumerate(group):
            other = collected[f"{u}#{j}"]
            assert [s.output for s in traj.steps] == [s.output for s in other.steps]
            assert (traj.seed, traj.status, traj.reward, traj.compute) == (
                other.seed,
                other.status,
                other.reward,
                other.compute,
            )
    assert len({tuple(s.output for s in t.steps) for g in groups for t in g}) > len(TASKS)  # samples differ
