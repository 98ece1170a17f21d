"""DAgger: the TextCraft expert acts from states the demos never visit, correction records train exactly the
expert's turn, flagless demos train as before, and `agentprm dagger` runs end to end and resumes."""

from __future__ import annotations

import json
import random

import pytest

from agentprm.conversation import CORRECTION, LOSS, tokenize_conversation, trajectory_messages
from agentprm.envs.textcraft import TextCraftEnv
from agentprm.envs.textcraft_expert import TextCraftStateExpert, expert_trajectory
from agentprm.policy.dagger import correction_records
from agentprm.policy.sft import IGNORE, load_demo_conversations, sft_example
from agentprm.trajectory import Step, Trajectory, read_trajectories, write_trajectories
from tests.cli_helpers import run_main

FENCE = "textcraft_310"  # oak fence: get 2 oak logs, 2 x (4 oak planks from 1 log), 4 stick, the fence


@pytest.fixture(scope="module")
def env():
    return TextCraftEnv()


def _play(env, actions):
    """Reset to FENCE's task and send `actions`; the env's answers."""
    first = env.reset(FENCE)
    return first, [env.step(a).observation for a in actions]


def _follow(env, expert, first, limit=40):
    """Follow the expert from env's state until the episode ends; (success, turns taken, sources)."""
    sources = []
    for k in range(limit):
        turn = expert.next_turn(env, [], first)
        assert turn.labelled, turn.reason
        sources.append(turn.source)
        res = env.step(turn.action)
        if res.done:
            return env.is_success(res.reward, res.done), k + 1, sources
    return False, limit, sources


def test_on_the_experts_path_the_label_is_the_demos_turn(env):
    demo = expert_trajectory(env, FENCE, 0, "brief")
    expert = TextCraftStateExpert("brief")
    first = env.reset(FENCE)
    for s in demo.steps:
        turn = expert.next_turn(env, [], first)
        assert (turn.output, turn.action, turn.source) == (s.output, s.action, "demo")
        env.step(s.action)


def test_after_a_wrong_step_the_expert_replans_with_the_demos_counting(env):
    expert = TextCraftStateExpert("brief")
    # A miscount the tiny policy makes: sticks before the second plank craft.
    first, said = _play(
        env, ["get 2 oak logs", "craft 4 oak planks using 1 oak logs", "craft 4 stick using 2 oak planks"]
    )
    assert all(s.startswith(("Got", "Crafted")) for s in said)
    turn = expert.next_turn(env, [], first)
    assert turn.source == "replan"
    # the second of the two plank crafts, counted over the whole plan as the demo counts it
    assert turn.output == (
        "Thought: I need 6 oak planks for stick and oak fence (2 of 2).\nAction: craft 4 oak planks using 1 oak logs"
    )
    env.step(turn.action)
    assert expert.next_turn(env, [], first).output == (
        "Thought: Now I craft oak fence.\nAction: craft 3 oak fence using 2 stick, 4 oak planks"
    )
    # Planks from one log twice: the second craft is refused; the expert gets the missing log first.
    first, said = _play(
        env, ["get 1 oak logs", "craft 4 oak planks using 1 oak logs", "craft 4 oak planks using 1 oak logs"]
    )
    assert said[-1].startswith("Could not find enough items")
    turn = expert.next_turn(env, [], first)
    assert turn.output == "Thought: I need 1 oak logs for oak planks.\nAction: get 1 oak logs"
    assert turn.rounds_to_goal == 4  # get, planks, stick, fence
    ok, _, _ = _follow(env, expert, first)
    assert ok


@pytest.mark.parametrize("style", ["brief", "full", "none"])
def test_following_the_expert_from_perturbed_states_succeeds(env, style):
    """Random wrong steps (repeated gets and crafts, wrong counts, junk) then the expert: the goal is made."""
    rng = random.Random(f"dagger-{style}")
    expert = TextCraftStateExpert(style)
    replans = trials = 0
    tasks = env.task_ids("train", 12)
    for task in tasks:
        demo = expert_trajectory(env, task, 0, style)
        if not demo.success:
            continue
        for _ in range(2):
            first = env.reset(task)
            # a prefix of the demo, then wrong steps: the states a policy that miscounts reaches
            for s in demo.steps[: rng.randint(0, len(demo.steps) - 1)]:
                env.step(s.action)
            for _ in range(rng.randint(1, 4)):
                roll = rng.random()
                if roll < 0.4 and demo.steps:
                    action = rng.choice(demo.steps[:-1] or demo.steps).action  # repeat a get or a craft
                else:
                    action = env.sample_action(rng)
                if env.step(action).done:
                    break
            if env.goal in env.inventory:
                continue
            ok, _, sources = _follow(env, expert, first)
            assert ok, (task, style)
            trials += 1
            replans += "replan" in sources
    assert trials >= 20 and replans >= trials // 3  # many perturbed states are off the expert's path


def test_no_label_where_no_plan_reaches_the_goal(env):
    env.reset(FENCE)
    env.commands = [c for c in env.commands if "oak fence" not in c.split(" using")[0]]  # the goal's recipe hidden
    turn = TextCraftStateExpert("brief").next_turn(env, [], env.observation())
    assert not turn.labelled and turn.output is None and "no crafting command makes the goal" in turn.reason
    assert "inventory" in TextCraftStateExpert().next_turn(object(), [], "").reason


def _policy_episode(env, actions):
    """A policy's episode on FENCE as the rollout engine records it (outputs = 'Action: <a>')."""
    first = env.reset(FENCE)
    traj = Trajectory.begin(env, FENCE, first, id=f"{FENCE}#0", policy="tiny")
    obs = first
    for t, a in enumerate(actions):
        res = env.step(a)
        traj.steps.append(Step(t, obs, f"Thought: my own words {t}.\nAction: {a}", a, res.reward, res.done))
        obs = res.observation
    traj.status = "max_rounds"
    return traj


def test_correction_records_label_every_state_with_the_policys_turns_as_context(env):
    actions = ["get 2 oak logs", "craft 4 oak planks using 1 oak logs", "craft 4 stick using 2 oak planks", "inventory"]
    traj = _policy_episode(env, actions)
    records, s = correction_records(traj, TextCraftEnv(env.book), TextCraftStateExpert("brief"))
    assert (s.states, s.labelled, s.written, sum(s.unrecoverable.values())) == (4, 4, 4, 0)
    assert s.agreeing == 2 and s.sources == {"demo": 3, "replan": 1}  # state 2 is on the path; 3 is not
    # sticks before the second plank craft costs nothing (any order works); an inventory look wastes a turn
    assert s.optimal == 3 and [r.meta[CORRECTION]["policy_optimal"] for r in records] == [True, True, True, False]
    for k, r in enumerate(records):
        assert len(r.steps) == k + 1 and r.meta[CORRECTION]["state"] == k and r.meta[CORRECTION]["episode"] == traj.id
        assert [st.output for st in r.steps[:k]] == [st.output for st in traj.steps[:k]]
        assert all(st.info[LOSS] is False for st in r.steps[:k]) and LOSS not in r.steps[k].info
        assert r.steps[k].observation == traj.steps[k].observation
    assert records[2].steps[-1].action == records[3].steps[-1].action == "craft 4 oak planks using 1 oak logs"
    assert LOSS not in traj.steps[0].info  # the rollout itself is not changed
    mistakes, _ = correction_records(traj, TextCraftEnv(env.book), TextCraftStateExpert("brief"), only_mistakes=True)
    assert [r.meta[CORRECTION]["state"] for r in mistakes] == [3]
    # a replay that does not reproduce the rollout is counted, never labelled
    traj.steps[2].observation = "something else"
    records, s = correction_records(traj, TextCraftEnv(env.book), TextCraftStateExpert("brief"))
    assert len(records) == 2 and s.unrecoverable == {"replay diverged from the rollout": 2}


@pytest.fixture(scope="module")
def tok():
    from agentprm.policy.tokenizer import train_chat_tokenizer

    return train_chat_tokenizer(["Thought: my own words 0.\nAction: get 2 oak logs craft 4 oak planks", "OK."] * 5, 300)


def test_loss_mask_trains_exactly_the_corrected_turn(env, tok):
    actions = ["get 2 oak logs", "craft 4 oak planks using 1 oak logs", "craft 4 stick using 2 oak planks"]
    traj = _policy_episode(env, actions)
    records, _ = correction_records(traj, TextCraftEnv(env.book), TextCraftStateExpert("brief"))
    msgs = trajectory_messages(records[2])
    ids, labels = sft_example(tok, msgs)
    spans = tokenize_conversation(tok, msgs).assistant_spans
    assert len(spans) == 4  # OK., two policy turns, the expert's turn
    start, end = spans[-1]
    trained = [i for i, x in enumerate(labels) if x != IGNORE]
    assert trained == list(range(start, end))
    assert tok.decode(ids[start:end]) == records[2].steps[-1].output + "<|im_end|>"
    assert labels[start:end] == ids[start:end]


def test_flagless_demos_tokenize_and_mask_as_before(env, tok):
    demo = _policy_episode(env, ["get 2 oak logs", "craft 4 oak planks using 1 oak logs"])
    msgs = trajectory_messages(demo)
    assert all(set(m) == {"role", "content"} for m in msgs)  # no flag unless a step sets one
    ids, labels = sft_example(tok, msgs)
    spans = tokenize_conversation(tok, msgs).assistant_spans
    expected = [IGNORE] * len(ids)
    for s, e in spans[1:]:  # every turn but the ACK, as before the flag existed
        expected[s:e] = ids[s:e]
    assert labels == expected
    # flagging a turn changes its labels only, never the tokens
    demo.steps[0].info[LOSS] = False
    ids2, labels2 = sft_example(tok, trajectory_messages(demo))
    s0, e0 = spans[1]
    assert ids2 == ids and labels2[:s0] == labels[:s0] and labels2[e0:] == labels[e0:]
    assert set(labels2[s0:e0]) == {IGNORE}
    from agentprm.conversation import to_agentgym

    assert [c["loss"] for c in to_agentgym(demo)["conversations"]] == [False, True, False, False, False, True]


def test_sft_reads_demos_and_corrections_from_several_files(env, tmp_path):
    demo = expert_trajectory(env, FENCE, 0, "brief")
    failed = _policy_episode(env, ["inventory", "inventory"])
    records, _ = correction_records(failed, TextCraftEnv(env.book), TextCraftStateExpert("brief"))
    write_trajectories(tmp_path / "d.jsonl", [demo, failed])
    write_trajectories(tmp_path / "c.jsonl", records)
    convs, env_name = load_demo_conversations([tmp_path / "d.jsonl", tmp_path / "c.jsonl"])
    assert env_name == "textcraft" and len(convs) == 3  # the demo and two corrections; the failure is dropped
    assert convs[2][3] == {"role": "assistant", "content": failed.steps[0].output, LOSS: False}
    assert convs[2][-1] == {"role": "assistant", "content": records[1].steps[-1].output}


def _tiny_textcraft_policy(path, env):
    from agentprm.policy.tiny import TinyPolicyConfig, build_tiny

    demos = [expert_trajectory(env, t, 0, "brief") for t in env.task_ids("train", 3)]
    cfg = TinyPolicyConfig(hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64, vocab_size=300)
    model, tokenizer = build_tiny([trajectory_messages(t) for t in demos], cfg, seed=0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    write_trajectories(path.with_name("demos.jsonl"), demos)
    return path


def test_dagger_cli_end_to_end_resumes_and_feeds_sft(env, tmp_path):
    pol = _tiny_textcraft_policy(tmp_path / "pol", env)
    out, rollouts = tmp_path / "corr.jsonl", tmp_path / "corr.rollouts.jsonl"
    args = ["dagger", "--policy", str(pol), "--n-tasks", "2", "--max-rounds", "3", "--max-new-tokens", "12"]
    args += ["--thought-style", "brief", "--out", str(out), "--threads", "1"]
    code, err = run_main(args)
    assert code == 0, err
    episodes = read_trajectories(rollouts)
    assert sorted(t.task_id for t in episodes) == env.task_ids("train", 2)
    records = read_trajectories(out)
    assert sum(len(t.steps) for t in episodes) == len(records) == 6  # an untrained policy never ends early
    for r in records:
        k = r.meta[CORRECTION]["state"]
        assert [s.info.get(LOSS, True) for s in r.steps] == [False] * k + [True]
        assert r.steps[-1].output.startswith("Thought: ")
    # a correction whose rollout line is missing (killed between the writes) is dropped; nothing is redone
    orphan = json.loads(out.read_text().splitlines()[0])
    orphan["meta"][CORRECTION]["episode"] = "textcraft_9#0"
    with open(out, "a") as fh:
        fh.write(json.dumps(orphan) + "\n")
    code, err = run_main(args)
    assert code == 0, err
    assert [r.id for r in read_trajectories(out)] == [r.id for r in records]
    assert len(read_trajectories(rollouts)) == 2
    code, err = run_main(
        ["sft", "--demos", str(pol.with_name("demos.jsonl")), "--demos", str(out), "--out", str(tmp_path / "p2")]
        + ["--max-steps", "1", "--batch-size", "4", "--layers", "1", "--hidden", "32", "--report-to", "none"]
    )
    assert code == 0, err
    meta = json.loads((tmp_path / "p2" / "agentprm_policy.json").read_text())
    assert meta["num_demos"] == 3 + 6


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--n-tasks", "0"], "--n-tasks must be at least 1"),
        (["--env", "babyai"], "no expert that acts from a mid-episode state"),
        (["--thought-style", "chatty"], "unknown thought style"),
    ],
)
def test_dagger_bad_input_is_one_line(tmp_path, extra, needle):
    pol = tmp_path / "nope"
    if "--n-tasks" in extra:
        pol = _tiny_textcraft_policy(tmp_path / "pol", TextCraftEnv())
    code, err = run_main(["dagger", "--policy", str(pol), "--out", str(tmp_path / "c.jsonl"), *extra])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
