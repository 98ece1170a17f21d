"""The math step task: answer reading, the generator, the splits, the GSM8K loader, the env's steps and
the conversation alignment that puts step t's PRM score on the token closing step t."""

import json
import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentprm.conversation import trajectory_messages
from agentprm.envs import get_spec, make_env
from agentprm.envs.math.answer import answers_match, extract_answer, final_answer, has_final_answer, parse_number
from agentprm.envs.math.env import CONTINUE, NUM_TEST, MathEnv, expert_trajectory
from agentprm.envs.math.gsm8k import load_jsonl, load_splits
from agentprm.envs.math.problems import MAX_LINES, MAX_VALUE, MIN_LINES, check_line, generate_problem
from agentprm.errors import UserError


@pytest.fixture(scope="module")
def env():
    return MathEnv()


# -- answers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("#### 72", 72),
        ("#### -5", -5),
        ("####\u22123", -3),  # Unicode minus
        ("#### -$5", -5),
        ("#### $-5", -5),
        ("#### 2.5", Fraction(5, 2)),
        ("#### .5", Fraction(1, 2)),
        ("#### 1,234", 1234),
        ("#### $1,234.50 dollars.", Fraction(246900, 200)),
        ("#### 18 apples.", 18),
        ("#### 12 km/h", 12),
        ("#### 40%", 40),
        ("#### 3,4", 3),  # not thousands grouping: the first number
        ("So she has 18 left.\n#### 18", 18),
        ("#### 7\n#### 8", 8),  # the last marker wins
        ("The answer is 42.", 42),
        ("the final answer is: $3,000", 3000),
        ("THE ANSWER IS -0.25", Fraction(-1, 4)),
    ],
)
def test_final_answer_reads_the_number(text, value):
    assert has_final_answer(text)
    assert final_answer(text) == value


@pytest.mark.parametrize("text", ["Now Mia has 12 + 5 = 17 apples.", "", "17", "answer: 17", "The answer: 17"])
def test_no_marker_is_no_answer(text):
    assert not has_final_answer(text)
    assert extract_answer(text) is None and final_answer(text) is None


@pytest.mark.parametrize("text", ["####", "#### seventeen", "The answer is unknown."])
def test_marker_without_a_number_is_an_answer_that_never_matches(text):
    assert has_final_answer(text) and final_answer(text) is None
    assert not answers_match(final_answer(text), "17")


def test_comparison_is_exact_and_numeric():
    assert answers_match(parse_number("3.0"), "3")
    assert answers_match(parse_number("$1,000"), "1000")
    assert answers_match(parse_number("-7 degrees"), "-7")
    assert not answers_match(parse_number("7"), "-7")
    assert not answers_match(parse_number("0.333"), Fraction(1, 3))  # no tolerance
    assert answers_match(parse_number("0.25"), Fraction(1, 4))
    assert not answers_match(None, "0")


# -- the generator ----------------------------------------------------------------------------------------


def test_generator_is_deterministic_per_seed():
    assert [generate_problem(i, 3) for i in range(50)] == [generate_problem(i, 3) for i in range(50)]
    assert [generate_problem(i, 3) for i in range(50)] != [generate_problem(i, 4) for i in range(50)]


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, 10**7), seed=st.integers(0, 1000))
def test_expert_solution_is_always_right(index, seed):
    p = generate_problem(index, seed)
    assert MIN_LINES <= len(p.lines) <= MAX_LINES
    assert all(check_line(line) for line in p.lines), p.lines  # every calculation is true
    assert p.solution[-1] == f"#### {p.answer}" and final_answer(p.solution[-1]) == p.answer
    # the answer is the last calculation's result, and no line before the answer line ends the episode
    assert p.lines[-1].rstrip(".").split("= ")[-1].lstrip("$").split()[0] == str(p.answer)
    assert not any(has_final_answer(line) for line in p.lines)
    # every number a line starts from is in the question or an earlier line's result
    known = {int(x) for x in re.findall(r"\d+", p.question)}
    known |= {2} if "doubles" in p.question else set()
    known |= {3} if "triples" in p.question else set()
    for line in p.lines:
        left, right = line.split("=")
        assert {int(x) for x in re.findall(r"\d+", left)} <= known, (p.question, line)
        known.add(int(right.strip(" $.").split()[0]))


def test_generator_varies_kinds_lengths_and_operations():
    ps = [generate_problem(i) for i in range(600)]
    assert {len(p.lines) for p in ps} == set(range(MIN_LINES, MAX_LINES + 1))
    assert {p.key.split("|")[0] for p in ps} == {"chain", "money", "pair"}
    text = "\n".join(line for p in ps for line in p.lines)
    assert all(f" {op} " in text for op in "+-*/")
    assert max(p.answer for p in ps) <= MAX_VALUE and min(p.answer for p in ps) >= 1
    assert len({p.question for p in ps}) == len(ps)


def test_splits_share_no_problem(env):
    test_ids, train_ids = env.task_ids("test"), env.task_ids("train", 3000)
    assert len(test_ids) == NUM_TEST and not set(test_ids) & set(train_ids)
    test_keys = {env_problem_key(t) for t in test_ids}
    assert not test_keys & {env_problem_key(t) for t in train_ids}
    assert env.task_ids("train", 10) == train_ids[:10]  # a prefix is stable
    assert len(set(env.task_ids("train", 12000))) == 12000  # beyond the listed pool: more, still unique


def env_problem_key(task_id):
    return generate_problem(int(task_id.split("_")[1])).key


# -- the env ----------------------------------------------------------------------------------------------


def test_registry_demos_expert_and_metric():
    spec = get_spec("math")
    assert spec.metric == "success"
    e = make_env("math")
    traj = spec.make_expert()(e, e.task_ids("test")[0], 0)
    assert traj.success and traj.status == "done" and traj.reward == 1.0
    assert traj.steps[-1].output.startswith("#### ") and traj.steps[-1].done
    assert all(s.observation == CONTINUE for s in traj.steps[1:])  # no feedback between steps
    assert traj.steps[0].observation == traj.first_observation == e.question


def test_expert_solves_every_test_problem(env):
    assert all(expert_trajectory(env, t).success for t in env.task_ids("test"))


def test_steps_answer_and_reward(env):
    env.reset("math_0")
    ref = env.reference
    r = env.step("Now I think.")
    assert (r.observation, r.reward, r.done) == (CONTINUE, 0.0, False)
    twin = env.clone()
    r = env.step(f"#### {ref}")
    assert (r.reward, r.done, r.info["correct"]) == (1.0, True, True)
    r = twin.step(f"The answer is {int(ref) + 1} apples.")
    assert (r.reward, r.done, r.info["correct"]) == (0.0, True, False)
    r = twin.step("#### many")
    assert (r.reward, r.done, r.info["answer"]) == (0.0, True, None)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_step_fuzz(text):
    e = MathEnv()
    e.reset("math_1")
    action = e.parse_action(text)
    r = e.step(action)
    assert r.reward in (0.0, 1.0) and isinstance(r.observation, str)
    assert r.done == has_final_answer(action)
    assert r.reward == (1.0 if r.done and final_answer(action) == int(e.reference) else 0.0)


def test_bad_task_id_is_a_user_error(env):
    with pytest.raises(UserError, match="math_<i>"):
        env.reset("textcraft_1")


# -- GSM8K files --------------------------------------------------------------------------------------------

GSM8K_LINES = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
        "altogether in April and May.\n#### 72",
    },
    {
        "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
        "How much did she earn?",
        "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = "
        "$<<0.2*50=10>>10.\n#### 10",
    },
    {
        "question": "A loan of $1,500 is paid back with $1,650. How much is the interest?",
        "answer": "The interest is 1,650 - 1,500 = $<<1650-1500=150>>150.\n\n#### 150",
    },
]


def _write(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    return path


def test_gsm8k_loader_splits_steps_and_strips_calculator_notes(tmp_path):
    items = load_jsonl(_write(tmp_path / "x.jsonl", GSM8K_LINES))
    assert len(items) == 3
    assert items[0].solution == (
        "Natalia sold 48/2 = 24 clips in May.",
        "Natalia sold 48+24 = 72 clips altogether in April and May.",
        "#### 72",
    )
    assert items[0].answer == "72" and items[2].solution[-1] == "#### 150" and len(items[2].solution) == 2


def test_gsm8k_env_from_data_dir_and_env_var(tmp_path, monkeypatch):
    _write(tmp_path / "train.jsonl", GSM8K_LINES[:2])
    _write(tmp_path / "test.jsonl", GSM8K_LINES[2:])
    e = MathEnv(data=tmp_path)
    assert e.task_ids("test") == ["math_0"] and e.task_ids("train") == ["math_1", "math_2"]
    assert e.max_rounds >= 10 and e.source == "gsm8k"
    for t in e.task_ids("train") + e.task_ids("test"):
        assert expert_trajectory(e, t).success
    assert e.reset("math_1").startswith("Natalia")
    assert e.step("#### 72.0").reward == 1.0
    monkeypatch.setenv("AGENTPRM_MATH_DATA", str(tmp_path))
    assert make_env("math").task_ids("train") == ["math_1", "math_2"]
    with pytest.raises(UserError, match="math_0..math_2"):
        make_env("math").reset("math_3")


@pytest.mark.parametrize(
    "content, needle",
    [
        ('{"question": "q"}', "question"),
        ('{"question": "q", "answer": "it is 3"}', "#### N"),
        ('{"question": "q", "answer": "#### lots"}', "#### N"),
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_gsm8k_bad_lines_are_one_user_error(tmp_path, content, needle):
    p = tmp_path / "test.jsonl"
    p.write_text(content + "\n")
    with pytest.raises(UserError, match=needle):
        load_jsonl(p)


def test_gsm8k_bad_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="train.jsonl"):
        load_splits(tmp_path)
    with pytest.raises(UserError, match="not a directory"):
        MathEnv(data=tmp_path / "nope")


# -- the conversation shape and the PRM's score positions ----------------------------------------------


@pytest.fixture(scope="module")
def tok(env):
    from agentprm.policy.tokenizer import train_chat_tokenizer

    texts = [env.system_prompt] + [
        generate_problem(i).question + "\n".join(generate_problem(i).solution) for i in range(40)
    ]
    return train_chat_tokenizer(texts, 400)


def test_step_t_is_assistant_turn_t_and_its_score_sits_on_its_end_token(env, tok):
    from agentprm.prm.model import encode_for_scoring

    traj = expert_trajectory(env, "math_3")
    n = traj.num_steps
    msgs = trajectory_messages(traj)
    # user: system prompt, assistant: OK., user: question, then (assistant: step t, user: "") per step
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"] + ["assistant", "user"] * (n - 1) + ["assistant"]
    assert msgs[2]["content"] == env.question and all(m["content"] == "" for m in msgs[4::2])
    enc = encode_for_scoring(tok, msgs)
    assert len(enc.step_index) == n
    for t, idx in enumerate(enc.step_index):
        # the scored token is the <|im_end|> closing step t, right after step t's text
        assert tok.convert_ids_to_tokens(enc.input_ids[idx]) == "<|im_end|>"
        assert tok.decode(enc.input_ids[: idx + 1]).endswith(traj.steps[t].output + "<|im_end|>")
        # scoring step t sees nothing of later steps: its own prefix encodes to the same tokens
        part = encode_for_scoring(tok, trajectory_messages(traj, t))
        assert part.input_ids[: idx + 1] == enc.input_ids[: idx + 1] and part.step_index == enc.step_index[: t + 1]
        if t + 1 < n:  # between two steps: only the empty continuation turn
            between = tok.decode(enc.input_ids[idx + 1 : enc.step_index[t + 1] + 1])
            assert (
                between
                == "\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n" + traj.steps[t + 1].output + "<|im_end|>"
            )


def test_labels_go_with_steps_in_order(env, tok):
    from agentprm.prm.train import PRMTrainConfig, build_items

    good = expert_trajectory(env, "math_3")
    items, _ = build_items([good], tok, PRMTrainConfig(objective="orm"))
    # ORM: only the last step (the answer line) carries the outcome; PVM: every step does
    assert items[0].static_targets[:-1] == [None] * (good.num_steps - 1) and items[0].static_targets[-1] == 1.0
    items, _ = build_items([good], tok, PRMTrainConfig(objective="pvm"))
    assert items[0].static_targets == [1.0] * good.num_steps and len(items[0].encoded.step_index) == good.num_steps
