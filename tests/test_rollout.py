"""The batched rollout engine and the collect job: batching invariance, token counts, errors, resume."""

from __future__ import annotations

import pytest
import torch

from agentprm.errors import EnvError
from agentprm.policy.hf import HFPolicy
from agentprm.rollout import RolloutConfig, continue_episode, fork, new_episode, run_episodes, step_round
from agentprm.rollout.jobs import episode_id, pass_at_n, rollout_tasks
from agentprm.testing import ScriptedEnv, ScriptedPolicy
from agentprm.testing.policies import tiny_policy_dir
from agentprm.trajectory import read_trajectories

torch.set_num_threads(1)  # tiny models: threads only contend on the shared CI cores


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    # Trained enough to solve the tasks greedily: episodes of different lengths end at different rounds.
    return HFPolicy.load(tiny_policy_dir(tmp_path_factory.mktemp("rollout") / "policy", train_steps=200))


def _run(policy, tasks, cfg, seed_base=None):
    eps = [
        new_episode(ScriptedEnv(max_rounds=4), u, traj_id=f"{u}#{i}", seed=None if seed_base is None else seed_base + i)
        for i, u in enumerate(tasks)
    ]
    return {ep.traj.id: ep.traj for ep in run_episodes(policy, eps, cfg)}


TASKS = ScriptedEnv(n_train=8).task_ids("train")


def test_batched_and_one_by_one_rollouts_are_identical_at_t0(policy):
    batched = _run(policy, TASKS, RolloutConfig(temperature=0, max_new_tokens=24, batch_size=8))
    single = _run(policy, TASKS, RolloutConfig(temperature=0, max_new_tokens=24, batch_size=1))
    assert batched.keys() == single.keys() == {f"{u}#{i}" for i, u in enumerate(TASKS)}
    for k in batched:
        assert batched[k].to_dict() == single[k].to_dict()
    assert {t.num_steps for t in batched.values()} == {1, 2, 3, 4}  # rows dropped at different rounds
    assert all(t.status in ("done", "max_rounds") for t in batched.values())


def test_seeded_sampling_is_reproducible_across_batch_sizes(policy):
    a = _run(policy, TASKS, RolloutConfig(temperature=1.0, max_new_tokens=16, batch_size=3), seed_base=7)
    b = _run(policy, TASKS, RolloutConfig(temperature=1.0, max_new_tokens=16, batch_size=8), seed_base=7)
    assert {k: t.to_dict() for k, t in a.items()} == {k: t.to_dict() for k, t in b.items()}


def test_reusing_earlier_rounds_keys_values_changes_no_trajectory(policy):
    """Rounds 2+ start from the stored keys/values of the round before (the default); turning that off
    must give the same trajectories, greedy and seeded sampling alike."""
    plain = HFPolicy(policy.model, policy.tokenizer, policy.name, reuse_kv=False)
    fresh = HFPolicy(policy.model, policy.tokenizer, policy.name)
    for cfg, seed in (
        (RolloutConfig(temperature=0, max_new_tokens=24, batch_size=8), None),
        (RolloutConfig(temperature=1.0, max_new_tokens=16, batch_size=3), 5),
    ):
        a, b = _run(fresh, TASKS, cfg, seed_base=seed), _run(plain, TASKS, cfg, seed_base=seed)
        assert {k: t.to_dict() for k, t in a.items()} == {k: t.to_dict() for k, t in b.items()}
    assert plain.prefix_store is None and fresh.prefix_store.hits > 0


def test_token_counts_add_up(policy):
    trajs = _run(policy, TASKS, RolloutConfig(temperature=1.0, max_new_tokens=16, batch_size=4), seed_base=0)
    for t in trajs.values():
        assert t.compute.policy_prompt_tokens == sum(s.prompt_tokens for s in t.steps)
        assert t.compute.policy_generated_tokens == sum(s.generated_tokens for s in t.steps)
        assert t.compute.env_steps == t.num_steps
        for s in t.steps:
            from agentprm.conversation import trajectory_messages

            msgs = trajectory_messages(t, s.t)[:-1]  # the conversation the turn was generated from
            assert s.prompt_tokens == len(policy.prompt_ids(msgs))
            assert 1 <= s.generated_tokens <= 16
            if s.info.get("truncated"):
                assert s.generated_tokens == 16


class FlakyEnv(ScriptedEnv):
    """Raises on the k-th step (an env crash), or on reset of task ids containing 'boom'."""

    def __init__(self, fail_at: int, **kw):
        super().__init__(**kw)
        self.fail_at, self.n = fail_at, 0

    def reset(self, task_id):
        if "boom" in task_id:
            raise RuntimeError("server down")
        self.n = 0
        return super().reset(task_id)

    def step(self, action):
        self.n += 1
        if self.n == self.fail_at:
            raise EnvError("connection reset")
        return super().step(action)


def test_env_errors_are_recorded_not_zero_rewarded():
    always_a = ScriptedPolicy(lambda conv, rng: "a")
    eps = [
        new_episode(FlakyEnv(fail_at=2), "line_3_0", traj_id="crash"),
        new_episode(FlakyEnv(fail_at=99), "line_1_boom", traj_id="reset"),
        new_episode(FlakyEnv(fail_at=99), "line_1_1", traj_id="ok"),
    ]
    got = {ep.traj.id: ep.traj for ep in run_episodes(always_a, eps, RolloutConfig(temperature=0))}
    crash = got["crash"]
    assert crash.status == "env_error" and not crash.success
    assert crash.steps[-1].env_error == "EnvError: connection reset" and crash.num_steps == 2
    assert crash.compute.env_steps == 1  # the failed step did not happen
    assert got["reset"].status == "env_error" and "server down" in got["reset"].meta["env_error"]
    assert got["ok"].status == "done" and got["ok"].success and got["ok"].reward == 1.0


def test_max_rounds_and_continuation_from_a_cloned_env():
    words = iter("abxxxxxx")
    pol = ScriptedPolicy(lambda conv, rng: next(words))
    env = ScriptedEnv(max_rounds=5)
    [ep] = list(run_episodes(pol, [new_episode(env, "line_3_0", traj_id="t")], RolloutConfig()))
    assert ep.traj.status == "max_rounds" and ep.traj.num_steps == 5 and not ep.traj.success

    # continue from the state after the first two (correct) steps: a fresh env replayed to that state
    prefix = ep.traj
    prefix.steps = prefix.steps[:2]
    state = ScriptedEnv(max_rounds=5)
    state.reset("line_3_0")
    obs = [state.step(s.action).observation for s in prefix.steps][-1]
    right = ScriptedPolicy(lambda conv, rng: "c")
    eps = [continue_episode(state.clone(), prefix, obs, traj_id=f"mc{i}") for i in range(3)]
    done = [e.traj for e in run_episodes(right, eps, RolloutConfig())]
    assert all(t.success and t.num_steps == 3 and t.meta["prefix_steps"] == 2 for t in done)
    assert all(t.compute.env_steps == 1 for t in done)  # only what the continuation spent
    assert [s.action for s in done[0].steps] == ["a", "b", "c"]
    assert done[0].steps[2].observation == obs


class CountingPolicy(ScriptedPolicy):
    def __init__(self, choose):
        super().__init__(choose)
        self.calls = []

    def generate(self, conversations, **kw):
        self.calls.append(len(conversations))
        return super().generate(conversations, **kw)


def test_step_round_advances_every_live_episode_one_turn_in_one_call():
    pol = CountingPolicy(lambda conv, rng: "a")
    eps = [new_episode(ScriptedEnv(max_rounds=4), u, traj_id=u) for u in ("line_1_0", "line_3_1", "line_2_2")]
    step_round(pol, eps, RolloutConfig())
    assert pol.calls == [3] and [e.traj.num_steps for e in eps] == [1, 1, 1]
    assert [e.traj.status for e in eps] == ["done", "running", "running"]  # "a" solves line_1 only
    step_round(pol, eps, RolloutConfig())  # the ended episode is left as it is
    assert pol.calls == [3, 2] and [e.traj.num_steps for e in eps] == [1, 2, 2]


def test_fork_copies_history_on_independent_envs_with_own_seeds():
    pol = ScriptedPolicy(lambda conv, rng: "a")
    [ep] = step_round(pol, [new_episode(ScriptedEnv(max_rounds=4), "line_2_0", traj_id="t")], RolloutConfig())
    a, b = fork(ep, [1, 2])
    assert (a.traj.seed, b.traj.seed) == (1, 2) and a.env is not b.env and a.traj is not b.traj
    step_round(ScriptedPolicy(lambda conv, rng: "b"), [a], RolloutConfig())
    step_round(ScriptedPolicy(lambda conv, rng: "x"), [b], RolloutConfig())
    assert a.traj.success and b.traj.num_steps == 2 and b.traj.status == "running"  # b's env was not stepped by a
    with pytest.raises(ValueError):
        fork(new_episode(ScriptedEnv(), "line_1_0", traj_id="u"), [0])  # not started: no state to copy


def test_collect_resumes_after_a_crash_without_duplicates(policy, tmp_path):
    cfg = RolloutConfig(temperature=1.0, max_new_tokens=16, batch_size=5)
    tasks = TASKS[:4]
    whole = tmp_path / "whole.jsonl"
    s = rollout_tasks(policy, lambda: ScriptedEnv(max_rounds=4), tasks, whole, n_per_task=3, cfg=cfg, seed=1)
    assert s.written == 12 and s.skipped == 0

    class Killed(Exception):
        pass

    def die_after_5(traj, summary):
        if summary.written == 5:
            raise Killed

    part = tmp_path / "part.jsonl"
    with pytest.raises(Killed):
        rollout_tasks(
            policy, lambda: ScriptedEnv(max_rounds=4), tasks, part, n_per_task=3, cfg=cfg, seed=1, on_done=die_after_5
        )
    with open(part, "a") as fh:  # and a torn line, as a kill -9 mid-write leaves
        fh.write('{"id": "line_1_0#0", "env": "scr')
    s2 = rollout_tasks(policy, lambda: ScriptedEnv(max_rounds=4), tasks, part, n_per_task=3, cfg=cfg, seed=1)
    assert s2.skipped == 5 and s2.written == 7
    got = read_trajectories(part)
    ids = [t.id for t in got]
    assert len(ids) == len(set(ids)) == 12
    assert set(ids) == {episode_id(u, k) for u in tasks for k in range(3)}
    # per-episode seeds: the resumed file holds the same trajectories as the uninterrupted run
    ref = {t.id: t.to_dict() for t in read_trajectories(whole)}
    assert {t.id: t.to_dict() for t in got} == ref
    assert 0.0 <= pass_at_n(got) <= 1.0


def test_engine_drives_the_real_textcraft_env(policy):
    from agentprm.envs import make_env

    env = make_env("textcraft")
    tasks = env.task_ids("test", 3)
    eps = [new_episode(make_env("textcraft"), u, traj_id=u) for u in tasks]
    got = [ep.traj for ep in run_episodes(policy, eps, RolloutConfig(temperature=0, max_new_tokens=12, max_rounds=2))]
    assert sorted(t.task_id for t in got) == sorted(tasks)
    for t in got:
        assert t.first_observation.startswith("Crafting commands:") and t.status == "max_rounds" and t.num_steps == 2
        assert t.compute.env_steps == 2 and all(s.prompt_tokens > 0 for s in t.steps)
