"""BabyAI env: observation texts (hand-checked against the grids), macro actions, reward, clone, fuzz."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentprm.envs import get_spec
from agentprm.envs.babyai import LEVELS, NOT_RECOGNIZED, TEST_IDS, BabyAIEnv, find_path
from agentprm.errors import EnvError, UserError

BARRIER = "There is a barrier in front of you, you can't move forward."


@pytest.fixture(scope="module")
def env() -> BabyAIEnv:
    return BabyAIEnv()


def text(obs: str) -> str:
    """The observation without its available-actions line."""
    return obs.split("\nAvailable actions: ")[0]


# -- observations on fixed seeds, checked by hand against the printed grids -----------------------------


def test_open_red_door_seed0(env):
    # 9x5 grid, agent at (3,2) facing down (right = -x); red door at (4,3): 1 ahead, 1 to the left;
    # wall straight ahead at (3,4): 2 steps.
    assert env.reset("babyai_12") == (
        "Your goal: open the red door\n"
        "In front of you in this room, you can see several objects: There is a red closed door 1 1 steps in front "
        "of you and 1 steps to your left.  The room has walls around you. You are facing a wall 2 steps away. "
        "You are not carrying anything.\n"
        'Available actions: ["turn left", "turn right", "move forward", "toggle and go through red closed door 1", '
        '"go to red closed door 1", "check available actions"]'
    )


def test_go_to_red_ball_no_dists_seed0(env):
    # Agent at (6,5) facing left (right = up); red ball at (2,2): 4 ahead, 3 to the right; wall at (0,5).
    assert env.reset("babyai_2") == (
        "Your goal: go to the red ball\n"
        "In front of you in this room, you can see several objects: There is a red ball 1 4 steps in front of you "
        "and 3 steps to your right.  The room has walls around you. You are facing a wall 6 steps away. "
        "You are not carrying anything.\n"
        'Available actions: ["turn left", "turn right", "move forward", "pickup red ball 1", "go to red ball 1", '
        '"check available actions"]'
    )


def test_go_to_obj_s6_v0_is_the_4x4_room(env):
    # AgentGym's GoToObjS6-v0 is GoToObj(room_size=4): agent (2,1) facing down, blue key at (1,2).
    obs = env.reset("babyai_3")
    assert env._env.width == 4 and env._env.height == 4
    assert text(obs) == (
        "Your goal: go to the blue key\n"
        "In front of you in this room, you can see several objects: There is a blue key 1 1 steps in front of you "
        "and 1 steps to your right.  The room has walls around you. You are facing a wall 2 steps away. "
        "You are not carrying anything."
    )


def test_numbering_and_sorting_match_agentgym_sample(env):
    # shared/envs.md §1.2's verified sample (data_idx 1, GoToRedBall seed 0).
    obs = env.reset("babyai_1")
    assert obs.startswith(
        "Your goal: go to the red ball\nIn front of you in this room, you can see several objects: "
        "There is a yellow key 1 1 steps in front of you and 1 steps to your left.  There is a grey ball 1 1 steps "
        "in front of you and 1 steps to your right.  "
    )
    assert "There is a grey ball 2 5 steps in front of you and 1 steps to your right.  " in obs
    assert (
        "There is a red ball 1 4 steps in front of you and 3 steps to your right.  The room has walls around "
        "you. You are facing a wall 6 steps away. You are not carrying anything.\nAvailable actions: " in obs
    )


def test_mission_then_becomes_and(env):
    env.reset("babyai_38")  # BossLevel seed 0: "... after you pick up a key ..."
    assert "after you" not in env.goal and "then" not in env.goal
    assert (
        env.goal
        == "put the red box next to a grey door and open a purple door and pick up a key and go to the yellow box"
    )


# -- reward of a known solution ---------------------------------------------------------------------------


def test_known_solution_reward(env):
    env.reset("babyai_1")
    res = env.step("go to red ball 1")
    assert env.low_level_steps == 8
    assert res.reward == pytest.approx(1 - 0.9 * 8 / 64)  # 0.8875, as AgentGym gives
    assert res.done and env.is_success(res.reward, res.done)
    assert text(res.observation).endswith("You are not carrying anything.\n The task is completed.")
    with pytest.raises(EnvError):
        env.step("turn left")


def test_toggle_solves_open_but_toggle_and_go_through_does_not(env):
    # AgentGym scores the macro's last primitive: stepping through after the toggle un-does the success.
    env.reset("babyai_12")
    res = env.step("toggle and go through red closed door 1")
    assert (res.reward, res.done) == (0.0, False)
    env.reset("babyai_12")
    assert env.step("go to red closed door 1").done is False
    res = env.step("toggle")
    assert res.done and res.reward == pytest.approx(1 - 0.9 * 3 / env._env.max_steps)
    assert "red open door 1 right in front of you 1 steps away" in res.observation


# -- every macro where it is legal and where it is not ------------------------------------------------------


def test_turns_and_move_forward(env):
    env.reset("babyai_3")
    d = env._env.agent_dir
    env.step("turn left")
    assert env._env.agent_dir == (d - 1) % 4
    env.step("turn right")
    assert env._env.agent_dir == d
    res = env.step("move forward")
    assert tuple(env._env.agent_pos) == (2, 2) and "facing a wall 1 steps away" in res.observation
    res = env.step("move forward")
    assert text(res.observation) == BARRIER and not res.info["action_is_valid"]
    assert tuple(env._env.agent_pos) == (2, 2)


def test_doors_toggle_and_go_through(env):
    env.reset("babyai_12")
    assert text(env.step("toggle").observation) == NOT_RECOGNIZED  # no door in front yet
    assert text(env.step("go through red closed door 1").observation) == (
        "You cannot go through red closed door 1, as it is closed. You should toggle it first."
    )
    env.step("go to red closed door 1")
    assert "toggle" in env.available_actions
    # Stop-early rule: walking into the closed door changes nothing, one primitive is spent.
    before = env.low_level_steps
    res = env.step("move forward")
    assert (
        env.low_level_steps == before + 1 and "red closed door 1 right in front of you 1 steps away" in res.observation
    )
    assert text(env.step("go to red closed door 1").observation) == "No change in state."  # empty expansion


def test_go_through_open_door(env):
    env.reset("babyai_12")
    env.step("go to red closed door 1")
    env._env.grid.get(4, 3).is_open = True  # open it without ending the episode
    env.step("turn left")
    env.step("turn right")
    assert "go through red open door 1" in env.available_actions
    env.step("go through red open door 1")
    assert tuple(env._env.agent_pos) == (4, 3)


def test_locked_door_needs_a_key(env):
    env.reset("babyai_9")  # GoToDoor seed 0 shows a grey locked door
    res = env.step("toggle and go through grey locked door 1")
    assert (
        text(res.observation) == "You cannot toggle and go through grey locked door 1, as you are not carrying a key."
    )


def test_pickup_drop(env):
    env.reset("babyai_1")
    assert text(env.step("drop").observation) == "You cannot drop the object, as you are not carrying anything."
    res = env.step("pickup yellow key 1")
    assert "You are carrying a yellow key." in res.observation
    assert not any(a.startswith("pickup") for a in env.available_actions)  # hands full
    assert text(env.step("pickup purple key 1").observation) == NOT_RECOGNIZED
    env.step("go to purple key 1")
    assert text(env.step("drop").observation) == (
        "You cannot drop the object, as there is already an object in front of you."
    )
    env.step("turn left")
    env.step("turn left")
    res = env.step("drop")
    assert "You are not carrying anything." in res.observation and env._env.carrying is None


def test_check_and_unknown_actions(env):
    obs = env.reset("babyai_9")
    res = env.step("check available actions")
    assert text(res.observation) == (
        "You can take the following actions: turn left, turn right, move forward, go to grey locked door 1, "
        "check available actions"
    )
    assert res.observation.endswith(obs.split("\n")[-1])
    assert text(env.step("").observation) == "No change in state."
    assert text(env.step("fly away").observation) == NOT_RECOGNIZED
    assert text(env.step("pick up grey locked door 1").observation) == NOT_RECOGNIZED  # the prompt's spelling
    assert text(env.step("go to goal").observation) == NOT_RECOGNIZED  # no goal tile in view
    assert text(env.step("go to red ball 7").observation) == NOT_RECOGNIZED
    assert text(env.step("  Turn LEFT ").observation).startswith("In front of you")  # lower-cased, stripped


def test_find_path_goal_tile_and_blocking():
    everything = range(-5, 20)
    # Facing right at (1,1); reach (3,1) standing on it: two forwards.
    assert find_path((1, 1), 0, (3, 1), set(), everything, everything, arrive=True) == [2, 2]
    # Facing it: one forward then stop in front.
    assert find_path((1, 1), 0, (3, 1), set(), everything, everything, arrive=False) == [2]
    # Blocked cell in between: go around.
    path = find_path((1, 1), 0, (3, 1), {(2, 1)}, everything, everything, arrive=True)
    assert path is not None and len(path) > 2
    assert find_path((1, 1), 0, (3, 1), set(), range(0, 3), everything, arrive=True) is None


# -- clone, splits, stray stdout, fuzz -----------------------------------------------------------------------


def test_clone_is_independent(env):
    env.reset("babyai_1")
    twin = env.clone()
    fp = env.fingerprint()
    twin.step("pickup yellow key 1")
    assert env.fingerprint() == fp and env._env.carrying is None and twin._env.carrying is not None
    assert env.step("go to red ball 1").done
    assert not twin.done and twin._env.carrying.color == "yellow"
    assert twin.step("turn left").done is False


def test_task_ids_and_splits(env):
    test = env.task_ids("test")
    train = env.task_ids("train")
    assert len(test) == 90 and len(set(test)) == 90 and len(train) == 810
    assert not set(test) & set(env.task_ids("train", 41_000))
    assert train[:3] == ["babyai_0", "babyai_1", "babyai_2"]
    assert {env.reset(t) and env.level for t in env.task_ids("train", 40)} == set(LEVELS)
    assert len(env.task_ids("train", 2000)) == 2000
    assert [int(t.split("_")[1]) for t in test] == list(TEST_IDS)
    with pytest.raises(UserError):
        env.task_ids("test", 91)
    for bad in ("babyai", "babyai_-1", "textcraft_3", "babyai_x"):
        with pytest.raises(UserError):
            env.reset(bad)


def test_registry_and_success_rule():
    spec = get_spec("babyai")
    assert spec.metric == "reward"
    e = spec.make()
    assert e.is_success(0.9, True) and not e.is_success(0.4, False) and not e.is_success(0.0, True)
    assert "pick up <obj>" in e.system_prompt and "pickup <obj>" in BabyAIEnv(fix_prompt=True).system_prompt


def test_minigrid_stdout_never_escapes(capsys):
    e = BabyAIEnv()
    e.reset("babyai_6")  # GoToImpUnlock seed 0 prints "Sampling rejected: ..." while generating
    e.step("turn left")
    assert capsys.readouterr().out == ""


@settings(max_examples=40, deadline=None)
@given(
    task=st.integers(min_value=0, max_value=400),
    moves=st.lists(st.one_of(st.text(max_size=30), st.integers(0, 50)), max_size=12),
)
def test_fuzz_actions_never_raise(task, moves):
    e = BabyAIEnv()
    obs = e.reset(f"babyai_{task}")
    assert "\nAvailable actions: [" in obs
    for m in moves:
        if e.done:
            break
        acts = e.available_actions
        action = acts[m % len(acts)] if isinstance(m, int) else m
        res = e.step(e.parse_action(f"Thought: hm\nAction: {action}"))
        assert res.observation.endswith("]") and "\nAvailable actions: [" in res.observation
        assert 0.0 <= res.reward <= 1.0


def test_sample_action_is_plausible(env):
    env.reset("babyai_1")
    rng = random.Random(0)
    samples = [env.sample_action(rng) for _ in range(200)]
    assert sum(s in env.available_actions for s in samples) > 100
    assert any(s not in env.available_actions for s in samples)
