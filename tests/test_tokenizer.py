"""The tiny policy's tokenizer modes on real env text: `phrase` merges the env's wording across spaces but
keeps every name the expert's actions copy from an observation the same ids in both; `word` is unchanged."""

from __future__ import annotations

import re
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from agentprm.conversation import trajectory_messages
from agentprm.errors import UserError
from agentprm.policy.tiny import TinyPolicyConfig, build_tokenizer, conversation_texts, system_prompts
from agentprm.policy.tokenizer import train_chat_tokenizer

ROOT = Path(__file__).resolve().parents[1]

# What an action copies from an observation, per env: BabyAI's "<colour> <type> <id>" (in the room's
# description and the available-actions list), TextCraft's item names after a quantity (in the recipes).
NAMES = {
    "babyai": re.compile(r"[a-z]+ (?:(?:open|closed|locked) )?(?:ball|box|key|door) \d+"),
    "textcraft": re.compile(r"(?<=\d )[a-z][a-z ]*?(?= using|,|$)"),
}
# A few cheap, varied expert demos per env (BabyAI: goto, pickup and door levels; first ids of train).
DEMO_TASKS = {"babyai": [3, 4, 5, 9, 13, 16, 18], "textcraft": list(range(12))}


@pytest.fixture(scope="module", params=sorted(DEMO_TASKS))
def demos(request):
    from agentprm.envs.base import get_spec
    from agentprm.envs.demos import make_expert

    env_name = request.param
    env = get_spec(env_name).make()
    expert = make_expert(env_name, "none")
    ids = env.task_ids("train", max(DEMO_TASKS[env_name]) + 1)
    trajs = [expert(env, ids[i], 0) for i in DEMO_TASKS[env_name]]
    trajs = [t for t in trajs if t.success]
    assert len(trajs) >= 4, f"the {env_name} expert failed on the test's tasks"
    return env_name, trajs


def _span_ids(tok, text: str, start: int, end: int) -> list[int] | None:
    """The ids covering text[start:end] when it begins and ends at token boundaries, else None."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    inside = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start]
    if not inside or enc["offset_mapping"][inside[0]][0] != start or enc["offset_mapping"][inside[-1]][1] != end:
        return None
    return [enc["input_ids"][i] for i in inside]


def copy_mismatches(tok, env_name: str, trajs) -> tuple[int, list[str]]:
    """(names checked, mismatches): for every name in every action, " name" in the assistant turn and at
    every whole-word occurrence in the observations shown so far must be whole tokens with equal ids."""
    checked, bad = 0, []
    for traj in trajs:
        seen = [traj.first_observation]
        for step in traj.steps:
            if step.t > 0:
                seen.append(step.observation)
            for m in NAMES[env_name].finditer(step.action):
                name = m.group(0)
                at = step.output.index(step.action) + m.start() - 1  # with its leading space
                want = _span_ids(tok, step.output, at, at + len(name) + 1)
                where = [(o, w.start()) for o in seen for w in re.finditer(rf"(?<= ){re.escape(name)}(?!\w)", o)]
                assert where, f"{name!r} of {step.action!r} is in no observation: the test's name pattern is wrong"
                for obs, pos in where:
                    checked += 1
                    got = _span_ids(tok, obs, pos - 1, pos + len(name))
                    if want is None or got != want:
                        bad.append(f"{name!r}: action {want} vs observation {got}")
    return checked, bad


def _convs(trajs):
    return [trajectory_messages(t) for t in trajs]


def test_phrase_keeps_copied_names_the_same_ids_in_observation_and_action(demos):
    env_name, trajs = demos
    phrase = build_tokenizer(_convs(trajs), TinyPolicyConfig(tokenizer_merge="phrase"))
    checked, bad = copy_mismatches(phrase, env_name, trajs)
    assert checked >= 10 and not bad, bad[:5]
    # The check bites: the same split with no word kept whole merges names into the env's wording.
    convs = _convs(trajs)
    texts = list(conversation_texts(convs, frozenset(system_prompts(convs)), roles=True))
    free = train_chat_tokenizer(texts, merge="phrase", keep_words=())
    assert copy_mismatches(free, env_name, trajs)[1]


def test_phrase_is_lossless_and_shorter(demos):
    env_name, trajs = demos
    convs = _convs(trajs)
    word, phrase = (build_tokenizer(convs, TinyPolicyConfig(tokenizer_merge=m)) for m in ("word", "phrase"))
    texts = [m["content"] for c in convs for m in c]
    for text in texts:
        assert phrase.decode(phrase(text, add_special_tokens=False)["input_ids"]) == text
    obs = [m["content"] for c in convs for m in c[2:] if m["role"] == "user"]

    def mean_len(tok):
        return statistics.mean(len(tok(o, add_special_tokens=False)["input_ids"]) for o in obs)

    # Measured at 200 demos: BabyAI 1.4x, TextCraft ~1.0x (its observations are mostly item names).
    assert mean_len(word) / mean_len(phrase) > (1.2 if env_name == "babyai" else 0.95)
    # The role after <|im_start|> is one token (word mode keeps its 3-token "assistant" as it was).
    assert len(phrase("assistant", add_special_tokens=False)["input_ids"]) == 1


def test_word_mode_is_the_default_and_phrase_survives_save_and_load(demos, tmp_path):
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    _, trajs = demos
    convs = _convs(trajs)
    assert TinyPolicyConfig().tokenizer_merge == "word"
    word = build_tokenizer(convs, TinyPolicyConfig())
    assert isinstance(word.backend_tokenizer.pre_tokenizer, pre_tokenizers.ByteLevel)
    phrase = build_tokenizer(convs, TinyPolicyConfig(tokenizer_merge="phrase"))
    phrase.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = trajectory_messages(trajs[-1])
    assert loaded.apply_chat_template(text) == phrase.apply_chat_template(text)


def test_tokenizer_merge_travels_from_config_and_changes_the_sft_key():
    from agentprm.pipeline import Pipeline, PipelineConfig

    cfg = PipelineConfig.load(ROOT / "configs" / "smoke.yaml")
    data = {"env": cfg.env, "sft": {"tiny": {"tokenizer_merge": "phrase"}}}
    phrased = PipelineConfig.from_dict(data)
    assert phrased.sft.tiny.tokenizer_merge == "phrase"
    same = replace(cfg, sft=replace(cfg.sft, tiny=replace(cfg.sft.tiny, tokenizer_merge="phrase")))
    assert Pipeline(same, "/x").sft_key() != Pipeline(cfg, "/x").sft_key()
    with pytest.raises(UserError, match="tokenizer_merge 'bpe'"):
        PipelineConfig.from_dict({"sft": {"tiny": {"tokenizer_merge": "bpe"}}})


def test_sft_cli_tokenizer_merge(tmp_path):
    from typer.testing import CliRunner

    from agentprm.cli import app
    from agentprm.testing.policies import scripted_demos
    from agentprm.trajectory import write_trajectories

    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos(4))
    pol = tmp_path / "policy"
    small = ["--max-steps", "1", "--batch-size", "4", "--hidden", "16", "--layers", "1", "--heads", "2"]
    r = CliRunner().invoke(
        app, ["sft", "--demos", str(demos), "--out", str(pol), "--tokenizer-merge", "phrase", *small]
    )
    assert r.exit_code == 0, r.output
    assert '"Split"' in (pol / "tokenizer.json").read_text()
    r = CliRunner().invoke(app, ["sft", "--demos", str(demos), "--out", str(tmp_path / "p2"), "--tokenizer-merge", "x"])
    assert isinstance(r.exception, UserError) and "one of word, phrase" in str(r.exception)


def test_strip_ids_blanks_exactly_the_ids_split_ids_cuts():
    from agentprm.policy.tokenizer import strip_ids

    assert strip_ids("click[B0UAUZTD1S] now") == "click[ ] now"
    assert strip_ids("B0UAUZTD1S") == " "
    # non-ASCII letters count as letters; 5 characters or no digit is not an id; 60Hz/1080P are too short
    assert strip_ids("é ab12cd é x1y2z café123") == "é   é x1y2z  "
    assert strip_ids("60Hz 1080P abcdefg") == "60Hz 1080P abcdefg"
    assert strip_ids("abc123def4") == " " and strip_ids("xabc123def4_") == " _"
