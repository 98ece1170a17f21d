"""TextCraft env and expert: texts checked by hand against AgentGym's semantics, determinism, fuzzing."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentprm.envs import make_env
from agentprm.envs.textcraft import TextCraftEnv, load_recipe_book
from agentprm.envs.textcraft_expert import expert_trajectory, make_plan, parse_observation
from agentprm.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BOOK = load_recipe_book()
GOLDEN_BOOTS = f"textcraft_{BOOK.goals.index('minecraft:golden_boots')}"
CRAFTING_TABLE = f"textcraft_{BOOK.goals.index('minecraft:crafting_table')}"


@pytest.fixture
def env() -> TextCraftEnv:
    return TextCraftEnv()


def _lines(obs: str) -> list[str]:
    head, _, _ = obs.partition("\n\nGoal: ")
    return head.split("\n")[1:]


# -- recipe data -----------------------------------------------------------------------------------------


def test_goal_pool_size_depths_and_order():
    assert len(BOOK.goals) == 544
    assert Counter(BOOK.depth[g] for g in BOOK.goals) == {1: 125, 2: 291, 3: 117, 4: 11}
    depths = [BOOK.depth[g] for g in BOOK.goals]
    assert depths == sorted(depths)
    assert BOOK.goals[0] == "minecraft:acacia_planks"  # first file in sorted order with depth 1


def test_known_recipe_lines_and_cycle_breaking():
    assert [r.line for r in BOOK.by_item["minecraft:golden_boots"]] == ["craft 1 golden boots using 4 gold ingot"]
    assert "craft 1 gold ingot using 9 gold nugget" in [r.line for r in BOOK.by_item["minecraft:gold_ingot"]]
    assert [r.line for r in BOOK.by_item["minecraft:oak_planks"]] == ["craft 4 oak planks using 1 oak logs"]
    assert [r.line for r in BOOK.by_item["minecraft:crafting_table"]] == ["craft 1 crafting table using 4 planks"]
    # gold_ingot_from_nuggets loads before gold_nugget, so the nugget recipe closes a cycle and is dropped
    assert not BOOK.is_craftable("minecraft:gold_nugget")
    # "9 gold ingot from 1 gold block" style recipes are dropped; tags that no craftable item carries
    # (oak logs) become plain items; planks stays a tag
    assert "minecraft:planks" in BOOK.tags and "minecraft:oak_logs" in BOOK.items


# -- observation and command texts ----------------------------------------------------------------------


def test_reset_observation_text(env):
    assert (
        env.reset("textcraft_0")
        == "Crafting commands:\ncraft 4 acacia planks using 1 acacia logs\n\nGoal: craft acacia planks."
    )
    obs = env.reset(GOLDEN_BOOTS)
    assert obs.startswith("Crafting commands:\n") and obs.endswith("\n\nGoal: craft golden boots.")
    lines = _lines(obs)
    assert {"craft 1 golden boots using 4 gold ingot", "craft 1 gold ingot using 9 gold nugget"} <= set(lines)
    assert len(lines) == len(set(lines)) == 2 + 10  # the tree plus AgentGym's 10 distractors
    assert all(re.fullmatch(r"craft \d+ [a-z ]+ using \d+ [a-z ]+(, \d+ [a-z ]+)*", ln) for ln in lines)


def test_commands_and_inventory_texts(env):
    env.reset(GOLDEN_BOOTS)
    assert env.step("inventory").observation == "Inventory: You are not carrying anything."
    r = env.step("get 36 gold nugget")
    assert (r.observation, r.reward, r.done) == ("Got 36 gold nugget", 0.0, False)
    assert env.step("craft 1 gold ingot using 9 gold nugget").observation == "Crafted 1 minecraft:gold_ingot"
    assert env.step("inventory").observation == "Inventory: [gold nugget] (27) [gold ingot] (1) "
    for _ in range(3):
        env.step("craft 1 gold ingot using 9 gold nugget")
    assert env.step("inventory").observation == "Inventory: [gold ingot] (4) "  # used-up items leave
    r = env.step("craft 1 golden boots using 4 gold ingot")
    assert (r.observation, r.reward, r.done) == ("Crafted 1 minecraft:golden_boots", 1.0, True)
    assert env.is_success(r.reward, r.done)


def test_error_texts(env):
    env.reset(GOLDEN_BOOTS)
    assert env.step("get 1 gold ingot").observation == "Could not find gold ingot"  # craftable
    assert env.step("get 1 diamond pickaxe shovel").observation == "Could not find diamond pickaxe shovel"
    assert env.step("get 2 planks").observation == "Could not find planks"  # a tag
    assert env.step("craft 1 golden boots using 4 gold ingot").observation == (
        "Could not find enough items to craft minecraft:golden_boots"
    )
    assert env.step("craft 1 golden boots using gold ingot").observation == "Wrong item format: gold ingot"
    assert env.step("Get 1 stick").observation == "Could not execute Get 1 stick"  # case-sensitive
    assert env.step("dance").observation == "Could not execute dance"
    env.step("get 36 gold nugget")
    for _ in range(4):
        env.step("craft 1 gold ingot using 9 gold nugget")
    r = env.step("craft 1 golden boots using 3 gold ingot")  # counts must equal the recipe's
    assert r.observation == (
        "Could not find a valid recipe for "
        "ItemTagWithCount(item_tag=ItemTag(tag=None, item_id='minecraft:golden_boots'), count=1)"
    )
    assert (r.reward, r.done) == (0.0, False)
    assert env.step("inventory").observation == "Inventory: [gold ingot] (4) "  # refusals change nothing


def test_generic_ingredients(env):
    env.reset(CRAFTING_TABLE)
    env.step("get 2 oak logs")
    r = env.step("craft 4 planks using 1 oak logs")  # the output named by its tag: no such recipe
    assert r.observation == (
        "Could not find a valid recipe for ItemTagWithCount(item_tag=ItemTag(tag='minecraft:planks', item_id=None), count=4)"
    )
    assert env.step("craft 4 oak planks using 1 oak logs").observation == "Crafted 4 minecraft:oak_planks"
    # the generic ingredient itself is never held, so naming it cannot pass the inventory check
    assert env.step("craft 1 crafting table using 4 planks").observation == (
        "Could not find enough items to craft minecraft:crafting_table"
    )
    r = env.step("craft 1 crafting table using 4 oak planks")
    assert (r.observation, r.reward, r.done) == ("Crafted 1 minecraft:crafting_table", 1.0, True)


def test_parse_action_uses_agentgym_cleaning(env):
    assert (
        env.parse_action("Thought: I need nuggets.\nAction: get 36 gold-nugget!\nObservation: x") == "get 36 goldnugget"
    )
    assert env.parse_action("Thought:\nfirst\n\nAction:\n  craft 1 blue dye using 1 lapis lazuli  ") == (
        "craft 1 blue dye using 1 lapis lazuli"
    )
    assert env.parse_action("Action: look") == "inventory"


# -- ids, splits, determinism -----------------------------------------------------------------------------


def test_splits_are_fixed_disjoint_and_cover_the_pool(env):
    test, train = env.task_ids("test"), env.task_ids("train")
    assert (len(test), len(train)) == (100, 444)
    assert not set(test) & set(train)
    assert {env.goal_of(t) for t in test + train} == set(BOOK.goals)
    assert test[:3] == ["textcraft_409", "textcraft_206", "textcraft_537"]  # SPLIT_SEED 2511's draw


def test_ids_beyond_the_pool_are_the_same_goals_with_other_distractors(env):
    ids = env.task_ids("train", 1000)
    assert len(ids) == len(set(ids)) == 1000
    assert ids[:444] == env.task_ids("train")
    assert ids[444] == f"textcraft_{int(ids[0].split('_')[1]) + 544}"
    assert env.goal_of(ids[444]) == env.goal_of(ids[0])
    obs = [env.reset(f"textcraft_{BOOK.goals.index('minecraft:golden_boots') + 544 * k}") for k in range(4)]
    assert len(set(obs)) == 4 and len({o.rsplit("Goal:", 1)[1] for o in obs}) == 1


def test_unknown_task_id_raises_user_error(env):
    for bad in ["textcraft_-1", "textcraft_x", "babyai_3", "12"]:
        with pytest.raises(UserError, match=r"textcraft_<i>"):
            env.reset(bad)
    with pytest.raises(UserError, match="train, test"):
        env.task_ids("dev")


def test_same_task_text_in_processes_with_different_hash_seeds(env):
    ids = ["textcraft_0", GOLDEN_BOOTS, "textcraft_499", "textcraft_1000", "textcraft_5437"]
    code = (
        "import json,sys; from agentprm.envs.textcraft import TextCraftEnv; e=TextCraftEnv(); "
        f"print(json.dumps([e.reset(t) for t in {ids!r}]))"
    )
    outs = []
    for hash_seed in ("1", "2"):
        run_env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT / "src")}
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env, check=True)
        outs.append(json.loads(res.stdout))
    assert outs[0] == outs[1] == [env.reset(t) for t in ids]


# -- robustness -------------------------------------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        "craft",
        "get",
        "inventory",
        "using",
        "gold",
        "ingot",
        "nugget",
        "oak",
        "planks",
        "stick",
        "golden",
        "boots",
        ",",
        "1",
        "4",
        "9",
        "36",
        "0",
        "",
    ]
)
_ACTIONS = st.one_of(
    st.text(max_size=60),
    st.lists(_WORDS, max_size=10).map(" ".join),
    st.builds(lambda a, b: f"craft {a} using {b}", st.text(max_size=20), st.text(max_size=30)),
    st.builds(lambda n, s: f"get {n} {s}", st.integers(0, 10**6), st.text(max_size=20)),
)
_FUZZ_ENV = TextCraftEnv()
_OK = re.compile(r"(Got \d+ .*|Crafted \d+ minecraft:.*|Inventory: .*)", re.DOTALL)
_ERR = re.compile(
    r"(Could not find .*|Could not find enough items to craft .*|Could not find a valid recipe for ItemTagWithCount\(.*\)"
    r"|Wrong item format: .*|Could not execute .*)",
    re.DOTALL,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ACTIONS, min_size=1, max_size=8))
def test_fuzz_actions_never_raise_and_answer_in_game_text(actions):
    _FUZZ_ENV.reset(GOLDEN_BOOTS)
    _FUZZ_ENV.step("get 36 gold nugget")
    for action in actions:
        r = _FUZZ_ENV.step(action)
        assert isinstance(r.observation, str)
        if r.info["valid"]:
            assert _OK.fullmatch(r.observation)
        else:
            assert _ERR.fullmatch(r.observation) and r.reward == 0.0 and not r.done


def test_huge_counts_are_refused_not_crashed(env):
    env.reset(GOLDEN_BOOTS)
    action = "get " + "9" * 5000 + " gold nugget"
    assert env.step(action).observation == f"Could not execute {action}"


def test_clone_is_independent(env):
    env.reset(GOLDEN_BOOTS)
    env.step("get 18 gold nugget")
    twin = env.clone()
    assert twin.book is env.book  # the recipe data is shared, not copied
    twin.step("craft 1 gold ingot using 9 gold nugget")
    assert env.step("inventory").observation == "Inventory: [gold nugget] (18) "
    assert twin.step("inventory").observation == "Inventory: [gold nugget] (9) [gold ingot] (1) "
    env.reset("textcraft_0")
    assert twin.observation().endswith("Goal: craft golden boots.")


def test_sample_action_mixes_valid_and_invalid(env):
    rng = random.Random(0)
    env.reset(GOLDEN_BOOTS)
    valid = [env.step(env.sample_action(rng)).info["valid"] for _ in range(400)]
    assert 0.1 < sum(valid) / len(valid) < 0.9


# -- expert ------------------------------------------------------------------------------------------------


def test_plan_from_text_only():
    obs = "Crafting commands:\ncraft 2 frob using 3 blip, 1 stick\ncraft 4 stick using 2 planks\ncraft 4 birch planks using 1 birch logs\n\nGoal: craft frob."
    recipes, goal = parse_observation(obs)
    assert goal == "frob" and set(recipes) == {"frob", "stick", "birch planks"}
    plan = make_plan(obs, random.Random(0))
    assert plan.generic == {"planks": "birch planks"}
    assert sorted(plan.actions) == sorted(
        [("get", "blip"), ("get", "birch logs"), ("craft", "birch planks"), ("craft", "stick"), ("craft", "frob")]
    )
    assert plan.need["blip"] == 3 and plan.need["birch logs"] == 1
    assert plan.actions[-1] == ("craft", "frob")


def test_expert_amounts_respect_output_counts(env):
    traj = expert_trajectory(env, GOLDEN_BOOTS, seed=0)
    assert traj.success and traj.status == "done" and traj.reward == 1.0
    assert [s.action for s in traj.steps] == ["get 36 gold nugget"] + ["craft 1 gold ingot using 9 gold nugget"] * 4 + [
        "craft 1 golden boots using 4 gold ingot"
    ]


def test_expert_solves_the_test_split(env):
    """Every test goal whose shortest plan fits 20 rounds is solved; the 5 that do not are known."""
    trajs = [expert_trajectory(env, t, seed=0) for t in env.task_ids("test")]
    failed = {t.meta["goal"] for t in trajs if not t.success}
    assert failed == {"lime banner", "light blue banner", "orange banner", "blue banner", "lodestone"}
    for t in trajs:
        assert all("more than 20" in t.meta["failure"] for t in trajs if not t.success)
        assert t.num_steps <= env.max_rounds and t.compute.env_steps == t.num_steps
        assert t.steps[0].observation == t.first_observation
        for prev, step in zip(t.steps, t.steps[1:]):
            assert step.observation != prev.observation or step.observation.startswith("Crafted")
        for s in t.steps:
            assert re.fullmatch(r"Thought: .+\nAction: .+", s.output, re.DOTALL)
            assert s.action == env.parse_action(s.output)
        assert t.meta["goal"] and t.meta["depth"] in (1, 2, 3, 4)


def test_expert_seed_varies_demos(env):
    tid = f"textcraft_{BOOK.goals.index('minecraft:painting')}"
    trajs = [expert_trajectory(env, tid, seed=s) for s in range(6)]
    assert all(t.success for t in trajs)
    assert len({tuple(s.output for s in t.steps) for t in trajs}) > 1


def test_brief_thoughts_keep_the_actions_and_successes(env):
    """ "brief" changes only the thoughts: same actions, same successes, one short sentence per turn."""
    for tid in env.task_ids("test")[:40]:
        full, brief = (expert_trajectory(env, tid, seed=3, thought_style=s) for s in ("full", "brief"))
        assert [s.action for s in brief.steps] == [s.action for s in full.steps]
        assert (brief.success, brief.status) == (full.success, full.status)
        for i, s in enumerate(brief.steps):
            goal = rf"To craft {re.escape(brief.meta['goal'])} I need [^.]+\. " if i == 0 else ""
            m = re.fullmatch(rf"Thought: {goal}([^\n.]+\.)\nAction: (.+)", s.output)
            assert m, s.output
            assert s.action == env.parse_action(s.output) == m.group(2)
        if full.steps:
            assert sum(map(len, (s.output for s in brief.steps))) < sum(map(len, (s.output for s in full.steps)))


def test_brief_thought_names_the_sub_goal(env):
    traj = expert_trajectory(env, GOLDEN_BOOTS, seed=0, thought_style="brief")
    assert [s.output.split("\n")[0] for s in traj.steps] == (
        ["Thought: To craft golden boots I need 4 gold ingot. I need 36 gold nugget for gold ingot."]
        + [f"Thought: I need 4 gold ingot for golden boots ({i} of 4)." for i in range(1, 5)]
        + ["Thought: Now I craft golden boots."]
    )


def test_unknown_thought_style_is_a_user_error(env):
    with pytest.raises(UserError, match="brief"):
        expert_trajectory(env, GOLDEN_BOOTS, thought_style="terse")


# -- CLI ---------------------------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    run_env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    code = "from agentprm.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=run_env, cwd=cwd)


def test_cli_demos_writes_every_test_trajectory(tmp_path):
    out = tmp_path / "demos.jsonl"
    res = _cli("demos", "--env", "textcraft", "--split", "test", "--n", "100", "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 100 and all(isinstance(r["success"], bool) for r in rows)
    assert sum(r["success"] for r in rows) == 95
    assert "expert success: 95/100 = 95.0%" in res.stdout
    brief = tmp_path / "brief.jsonl"
    res = _cli("demos", "--split", "test", "--n", "5", "--thought-style", "brief", "--out", str(brief))
    assert res.returncode == 0, res.stderr
    assert all(
        s["output"].startswith(("Thought: I need ", "Thought: To craft ")) or "Now I craft" in s["output"]
        for r in map(json.loads, brief.read_text().splitlines())
        for s in r["steps"]
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["demos", "--env", "nosuch", "--out", "{tmp}/x.jsonl"], "unknown env 'nosuch'"),
        (["demos", "--env", "textcraft", "--split", "dev", "--out", "{tmp}/x.jsonl"], "unknown split 'dev'"),
        (["demos", "--env", "textcraft", "--out", "{tmp}"], "is a directory"),
        (["demos", "--env", "textcraft", "--out", "/proc/no/such/x.jsonl"], "choose another --out"),
        (["play", "--env", "textcraft", "--task", "textcraft_x"], "textcraft_<i>"),
        (["demos", "--env", "textcraft", "--thought-style", "terse", "--out", "{tmp}/x.jsonl"], "full, brief, none"),
        (["demos", "--env", "babyai", "--thought-style", "brief", "--out", "{tmp}/x.jsonl"], "full, none"),
        (["demos", "--env", "math", "--thought-style", "brief", "--out", "{tmp}/x.jsonl"], "drop --thought-style"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, needle):
    res = _cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and needle in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""


def test_registry_builds_textcraft():
    env = make_env("textcraft")
    assert isinstance(env, TextCraftEnv) and env.max_rounds == 20


# -- renamed demo copies (envs/textcraft_augment.py) ------------------------------------------------------


def test_renamed_copy_is_a_consistent_world(env):
    from agentprm.envs.textcraft_augment import _WORD, item_words, rename_items

    demo = expert_trajectory(env, "textcraft_3", seed=0)
    assert demo.success
    copy = rename_items(demo, random.Random(1), copy_index=2)
    assert copy.task_id == "textcraft_3~rename2" and copy.meta["source"] == demo.id
    assert copy.system_prompt == demo.system_prompt
    # Item words are replaced by other item words, one to one, over the whole conversation.
    words = set(item_words())
    pairs = set()
    for a, b in [(demo.first_observation, copy.first_observation)] + [
        (x, y)
        for s, c in zip(demo.steps, copy.steps)
        for x, y in ((s.output, c.output), (s.observation, c.observation))
    ]:
        wa, wb = _WORD.findall(a), _WORD.findall(b)
        assert len(wa) == len(wb)
        # Everything that is not an item word (numbers, env grammar, capitalised replies) is untouched.
        assert _WORD.sub("#", a) == _WORD.sub("#", b)
        pairs |= {(x, y) for x, y in zip(wa, wb) if x in words}
    forward = dict(pairs)
    assert len(forward) == len(pairs), "one word renamed two ways"
    assert len(set(forward.values())) == len(forward), "two words renamed alike"
    assert any(x != y for x, y in forward.items())
    # The copy still reads: its goal is the renamed goal and every craft it does is a listed command.
    goal = re.search(r"Goal: craft (.*)\.", demo.first_observation).group(1)
    assert f"Goal: craft {' '.join(forward[w] for w in goal.split())}." in copy.first_observation
    targets = {m.group(1) for m in re.finditer(r"^craft \d+ (.*?) using ", copy.first_observation, re.M)}
    crafted = [
        re.match(r"craft \d+ (.*?) using ", c.action).group(1) for c in copy.steps if c.action.startswith("craft")
    ]
    assert crafted and set(crafted) <= targets
    for s, c in zip(demo.steps, copy.steps):
        assert c.action == _WORD.sub(lambda m: forward.get(m.group(0), m.group(0)), s.action)


def test_demos_write_renamed_copies_and_resume_the_same(tmp_path, env):
    from agentprm.envs.demos import run_expert
    from agentprm.trajectory import read_trajectories

    out = tmp_path / "d.jsonl"
    s = run_expert("textcraft", "train", 3, out, renamed_copies=2)
    trajs = list(read_trajectories(out))
    assert s.tried == 3 and len(trajs) == 3 + 2 * s.ok
    assert sum(t.meta.get("augmented") == "rename-items" for t in trajs) == 2 * s.ok
    again = tmp_path / "e.jsonl"
    run_expert("textcraft", "train", 3, again, renamed_copies=2)

    def content(path):  # trajectory ids carry a random suffix; everything else must be the same
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        for r in recs:
            r.pop("id"), r["meta"].pop("source", None)
        return recs

    assert content(out) == content(again)  # seeded per task: a resumed run writes the same copies
    with pytest.raises(UserError, match="no demo augmentation"):
        run_expert("babyai", "train", 1, tmp_path / "b.jsonl", renamed_copies=1)
