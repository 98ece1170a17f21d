"""Error paths end to end (issue 18 item 4): a policy that fails on some rows and an env that raises on
some steps. Best-of-N and beam rank failed candidates the same way (one function), labels and PRM training
leave them out, and the counts are reported.
"""

from __future__ import annotations

import random

import pytest
import torch
from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.envs import REGISTRY, EnvSpec, register
from agentprm.errors import EnvError
from agentprm.rollout import RolloutConfig
from agentprm.rollout.jobs import rollout_tasks
from agentprm.search.beam import BeamConfig, _rank_key, beam_search
from agentprm.search.best_of_n import BestOfNConfig, Candidate, best_of_n, select
from agentprm.search.core import FAILED_STATUSES, Node, rank_key
from agentprm.testing import ScriptedEnv
from agentprm.testing.policies import tiny_policy_dir
from agentprm.trajectory import Trajectory, read_trajectories
from tests.search_fakes import ORACLE, KeyedPolicy, _position

torch.set_num_threads(1)


class FlakyEnv(ScriptedEnv):
    """Raises on the step that types "c" in tasks of 4 words (a crash mid-episode)."""

    def step(self, action):
        if action == "c" and len(self.target) == 4:
            raise EnvError("injected env failure on 'c'")
        return super().step(action)


class FlakyPolicy(KeyedPolicy):
    """Fails (for the whole batch: the engine then retries row by row) on rows at their 2nd turn whose
    seed is divisible by 3: some rows fail, their neighbours do not."""

    name = "flaky"

    def generate(self, conversations, *, n=1, temperature=1.0, max_new_tokens=128, seed=None):
        seeds = seed if isinstance(seed, (list, tuple)) else [seed] * len(conversations)
        for conv, s in zip(conversations, seeds):
            pos, _ = _position(conv)
            turns = sum(m["role"] == "assistant" for m in conv)
            if turns == 1 and s is not None and s % 3 == 0:
                raise RuntimeError(f"injected policy failure at position {pos}")
        return super().generate(conversations, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)


def make_env():
    return FlakyEnv(max_rounds=6)


TASKS = ScriptedEnv(n_test=8).task_ids("test")


def test_best_of_n_and_beam_rank_failed_candidates_alike():
    rng = random.Random(0)
    statuses = ["done", "max_rounds", *FAILED_STATUSES]
    for _ in range(200):
        pool = [(rng.choice(statuses), rng.choice([None, rng.random() * 2])) for _ in range(rng.randint(1, 6))]
        cands = [Candidate(False, 0.0, s, [] if x is None else [x]) for s, x in pool]
        nodes = [
            Node(Trajectory("t", "e", "t", "", "", status=s), None, scores=[] if x is None else [x]) for s, x in pool
        ]
        by_bon = select(cands)
        by_beam = max(range(len(nodes)), key=lambda i: (_rank_key(nodes[i]), -i))
        assert by_bon == by_beam, pool
        assert rank_key(*pool[by_bon]) == max(rank_key(*p) for p in pool)
    # the case the two disagreed on before: a policy_error candidate with the best score
    assert select([Candidate(False, 0.0, "policy_error", [5.0]), Candidate(False, 0.0, "max_rounds", [0.1])]) == 1


def test_search_with_failing_policy_and_env_never_picks_a_failure_over_a_finished_candidate():
    policy = FlakyPolicy(p_right=0.7)
    bon = best_of_n(policy, ORACLE, make_env, TASKS, BestOfNConfig(n=6, temperature=1.0, max_new_tokens=8, seed=1))
    beam = beam_search(
        policy,
        ORACLE,
        make_env,
        TASKS,
        BeamConfig(beam_width=2, expansions=3, temperature=1.0, max_new_tokens=8, seed=1),
    )
    seen = {"env_error": 0, "policy_error": 0}
    for res in bon:
        cands = [Candidate.from_dict(d) for d in res.details["candidates"]]
        for c in cands:
            if c.status in seen:
                seen[c.status] += 1
        if any(c.status not in FAILED_STATUSES for c in cands):
            assert res.trajectory.status not in FAILED_STATUSES, res.task_id
    assert seen["env_error"] > 0 and seen["policy_error"] > 0, seen  # both error paths were exercised
    for res in beam:
        # a beam may end on a failure only when every path it kept failed; the error is recorded, reward 0
        t = res.trajectory
        if t.status == "env_error":
            assert "injected env failure" in (t.steps[-1].env_error or "") and t.reward == 0.0
        elif t.status == "policy_error":
            assert "injected policy failure" in t.meta["policy_error"] and t.reward == 0.0


@pytest.fixture()
def flaky_registered():
    register(EnvSpec(name="flaky", factory="tests.test_error_paths:make_env", description="test env"))
    yield
    REGISTRY.pop("flaky", None)


def test_labels_and_prm_training_leave_failures_out_and_count_them(tmp_path, flaky_registered):
    traj = tmp_path / "traj.jsonl"
    summary = rollout_tasks(
        FlakyPolicy(0.7),
        make_env,
        TASKS,
        traj,
        n_per_task=3,
        cfg=RolloutConfig(temperature=1.0, max_new_tokens=8, batch_size=5),
        seed=2,
    )
    trajs = read_trajectories(traj)
    n_bad = sum(t.status in FAILED_STATUSES for t in trajs)
    assert summary.statuses.get("env_error", 0) > 0 and summary.statuses.get("policy_error", 0) > 0, summary.statuses
    assert all(t.reward == 0.0 and not t.success for t in trajs if t.status in FAILED_STATUSES)
    assert all(t.meta.get("policy_error") for t in trajs if t.status == "policy_error")

    runner = CliRunner()
    labels = tmp_path / "td.jsonl"
    r = runner.invoke(app, ["label", "--method", "td-gae", "--trajectories", str(traj), "--out", str(labels)])
    assert r.exit_code == 0, r.output
    assert f"{n_bad} skipped: errors/empty" in r.output
    labelled = {line.split('"trajectory_id": "')[1].split('"')[0] for line in labels.read_text().splitlines()}
    assert labelled == {t.id for t in trajs if t.status not in FAILED_STATUSES and t.num_steps > 0}

    policy = tiny_policy_dir(tmp_path / "policy")
    r = runner.invoke(
        app,
        [
            "train-prm",
            "--objective",
            "agentprm",
            "--trajectories",
            str(traj),
            "--init",
            str(policy),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "prm"),
        ],
    )
    assert r.exit_code == 0, r.output
    good = sum(t.status not in FAILED_STATUSES and t.num_steps > 0 for t in trajs)
    assert f"on {good} trajectories" in r.output and f"{n_bad} error/empty" in r.output
