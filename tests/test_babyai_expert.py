"""BabyAI expert: BFS demos, the bot subprocess (timeout, memory cap), and `agentprm demos --env babyai`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.envs.babyai import BabyAIEnv
from agentprm.envs.babyai_expert import ExpertConfig, expert_trajectory, run_bot, thought_for


@pytest.fixture(scope="module")
def env() -> BabyAIEnv:
    return BabyAIEnv()


def test_bfs_demo_is_a_valid_successful_episode(env):
    traj = expert_trajectory(env, "babyai_1", seed=0)
    assert traj.success and traj.meta["solver"] == "bfs" and traj.meta["group"] == "GoToRedBall"
    assert [s.action for s in traj.steps] == ["go to red ball 1"]
    assert traj.reward == pytest.approx(0.8875)
    out = traj.steps[0].output
    assert out.startswith("Thought: My goal is to go to the red ball.") and out.endswith("\nAction: go to red ball 1")
    assert env.parse_action(out) == "go to red ball 1"
    # Replaying the actions on a fresh env gives the same outcome.
    e = BabyAIEnv()
    e.reset(traj.task_id)
    results = [e.step(s.action) for s in traj.steps]
    assert results[-1].done and results[-1].reward == traj.reward


def test_multi_step_demo_replays(env):
    traj = expert_trajectory(env, "babyai_12", seed=0)  # OpenRedDoor: go to the door, then toggle
    assert traj.success and [s.action for s in traj.steps] == ["go to red closed door 1", "toggle"]
    assert traj.steps[1].observation.startswith("In front of you")  # o_1 is the env's answer to a_0
    assert traj.first_observation.startswith("Your goal: open the red door")


def test_bot_fallback_used_when_bfs_budget_is_zero(env):
    traj = expert_trajectory(env, "babyai_1", seed=0, config=ExpertConfig(bfs_budget=0))
    assert traj.success and traj.meta["solver"] == "bot" and len(traj.steps) <= env.max_rounds


def test_failure_is_reported_not_hidden(env):
    traj = expert_trajectory(env, "babyai_1", seed=0, config=ExpertConfig(bfs_budget=0, use_bot=False))
    assert not traj.success and traj.steps == [] and traj.reward == 0.0


def test_bot_subprocess_succeeds_and_times_out():
    actions, ok, note = run_bot("BabyAI-GoToRedBall-v0", 0, ExpertConfig())
    assert ok and note == "" and actions
    actions, ok, note = run_bot("BabyAI-BossLevel-v0", 0, ExpertConfig(bot_timeout_s=0.001))
    assert not ok and "timed out" in note


def test_bot_memory_cap_stops_it(monkeypatch):
    # A bot that grows past the cap (as it does on UnlockToUnlock) must fail cleanly in its subprocess.
    import agentprm.envs.babyai_expert as expert

    def greedy_level(level):
        return bytearray(400 << 20)  # the fork inherits this patch

    monkeypatch.setattr(expert, "make_level", greedy_level)
    _, ok, note = run_bot("BabyAI-GoToRedBall-v0", 0, ExpertConfig(bot_memory_mb=100))
    assert not ok and note == "bot hit the memory cap"


def test_thoughts_are_specific():
    goal = "pick up the blue ball"
    assert "blue ball" in thought_for("pickup blue ball 1", goal, "", False)
    assert "open it" in thought_for("toggle and go through red closed door 2", goal, "", False)
    assert "yellow key" in thought_for("drop", goal, "You are carrying a yellow key.", False)
    assert thought_for("turn left", goal, "", True).startswith("My goal is to pick up the blue ball.")


def test_demos_cli_writes_successes_and_prints_levels(tmp_path):
    out = tmp_path / "demos.jsonl"
    args = [
        "demos",
        "--env",
        "babyai",
        "--split",
        "train",
        "--n",
        "3",
        "--out",
        str(out),
    ]  # BabyAI default: successes only
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["success"] for r in rows)
    assert "GoToRedBallGrey" in res.output and "expert success:" in res.output
    # Rerun resumes: nothing new to do.
    res = CliRunner().invoke(app, args)
    assert "already in" in res.output


def test_thought_names_the_object_not_the_verb():
    t = thought_for("pickup grey key 1", "pick up the grey key", "", False)
    assert "the grey key" in t and "pickup grey" not in t
    assert "the blue open door" in thought_for("go through blue open door 1", "go to the red ball", "", False)


def test_demos_with_worker_processes_write_what_one_process_writes(tmp_path):
    from agentprm.envs.demos import run_expert

    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    s1 = run_expert("babyai", "train", 6, one, seed=3)
    s2 = run_expert("babyai", "train", 6, two, seed=3, workers=2)
    assert (s1.tried, s1.ok) == (s2.tried, s2.ok) == (6, s1.ok)
    strip = [{k: v for k, v in json.loads(line).items() if k != "id"} for line in one.read_text().splitlines()]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "id"} for line in two.read_text().splitlines()]


def test_action_only_style_keeps_the_actions_and_drops_the_thoughts(env):
    from agentprm.envs.demos import make_expert
    from agentprm.errors import UserError

    full = expert_trajectory(env, "babyai_7", seed=1)
    bare = make_expert("babyai", "none")(env, "babyai_7", 1)
    assert len(full.steps) > 1 and [s.action for s in bare.steps] == [s.action for s in full.steps]
    assert all(s.output == f"Action: {s.action}" for s in bare.steps)
    assert env.parse_action(bare.steps[0].output) == full.steps[0].action
    assert (bare.success, bare.reward) == (full.success, full.reward)
    with pytest.raises(UserError, match="thought style"):
        make_expert("babyai", "brief")
