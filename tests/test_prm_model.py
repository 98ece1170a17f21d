"""The value-head PRM: where each step's score is read, one-pass scoring, save/load, candidates."""

import copy
import random

import pytest
import torch

from agentprm.conversation import trajectory_messages
from agentprm.prm.base import RewardModel
from agentprm.prm.model import PRMScorer, ValueHeadPRM, encode_for_scoring
from tests.prm_helpers import scripted_trajectory, tiny_backbone_dir, tiny_tokenizer

QWEN25_LIKE = (  # Qwen2.5-Instruct's shape: a default system turn when the first message is not one
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3_LIKE = (
    "<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def traj():
    return scripted_trajectory("line_3_0", 0.6, random.Random(1))


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory, tok):
    d = tiny_backbone_dir(tmp_path_factory.mktemp("backbone"), tok)
    model = ValueHeadPRM.from_backbone(d)
    torch.manual_seed(3)
    torch.nn.init.normal_(model.head.weight, std=0.5)  # a non-zero head so scores differ per step
    out = tmp_path_factory.mktemp("prm")
    from agentprm.prm.model import PRMMeta

    model.save(out, tok, PRMMeta())
    return out


def _pinned_index_check(tok, traj, end_token):
    msgs = trajectory_messages(traj)
    enc = encode_for_scoring(tok, msgs)
    assert len(enc.step_index) == traj.num_steps  # "OK." is not scored
    for t, i in enumerate(enc.step_index):
        assert tok.convert_ids_to_tokens(enc.input_ids[i]) == end_token
        # everything before the read token is exactly (s_t, a_t) rendered: the conversation through action t
        prefix = tok.decode(enc.input_ids[: i + 1])
        through = tok.apply_chat_template(trajectory_messages(traj, t), tokenize=False).rstrip()
        assert prefix == through
        assert prefix[: -len(end_token)].endswith(traj.steps[t].output.strip())
    return enc


def test_score_index_tiny_chatml(tok, traj):
    enc = _pinned_index_check(tok, traj, "<|im_end|>")
    # hand-pinned on the first step: the read token is the <|im_end|> closing "Thought: ... Action: x"
    first = tok.decode(enc.input_ids[: enc.step_index[0] + 1])
    assert first.endswith(f"<|im_start|>assistant\n{traj.steps[0].output}<|im_end|>")
    assert first.count("<|im_start|>assistant") == 2  # the ack turn, then step 0


@pytest.mark.parametrize("template,end", [(QWEN25_LIKE, "<|im_end|>"), (LLAMA3_LIKE, "<|eot_id|>")])
def test_score_index_pretrained_style_templates(tok, traj, template, end):
    t = copy.deepcopy(tok)
    t.add_special_tokens(
        {
            "additional_special_tokens": [
                "<|begin_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
                "<|im_start|>",
                "<|endoftext|>",
            ]
        }
    )
    t.chat_template = template
    enc = _pinned_index_check(t, traj, end)
    if template is QWEN25_LIKE:
        assert t.decode(enc.input_ids[: enc.step_index[0]]).startswith("<|im_start|>system\nYou are Qwen")


def test_one_pass_equals_scoring_each_prefix(prm_dir, traj):
    scorer = PRMScorer.load(prm_dir)
    full = scorer.score([trajectory_messages(traj)])[0].scores
    per_step = [scorer.score([trajectory_messages(traj, t)])[0].scores[-1] for t in range(traj.num_steps)]
    assert full == pytest.approx(per_step, abs=1e-5)
    assert len(set(round(s, 6) for s in full)) > 1  # the head is not constant: the check has teeth


def test_batched_scores_equal_single(prm_dir):
    rng = random.Random(5)
    trajs = [scripted_trajectory(f"line_{k}_0", 0.5, rng) for k in (1, 2, 3, 4)]
    scorer = PRMScorer.load(prm_dir, batch_tokens=10_000)
    batched = scorer.score([trajectory_messages(t) for t in trajs])
    for t, b in zip(trajs, batched):
        single = scorer.score([trajectory_messages(t)])[0]
        assert b.scores == pytest.approx(single.scores, abs=1e-5) and b.tokens == single.tokens


def test_save_load_round_trip_identical_scores(prm_dir, tmp_path, traj):
    model, tok, meta = ValueHeadPRM.load(prm_dir)
    before = PRMScorer(model, tok).score([trajectory_messages(traj)])[0].scores
    model.save(tmp_path / "again", tok, meta)
    after = PRMScorer.load(tmp_path / "again").score([trajectory_messages(traj)])[0].scores
    assert before == after  # bit-identical, not approximately
    assert isinstance(PRMScorer.load(prm_dir), RewardModel)


def test_score_candidates_equals_scoring_extended_conversations(prm_dir, traj):
    scorer = PRMScorer.load(prm_dir)
    conv = trajectory_messages(traj, 0) + [{"role": "user", "content": traj.steps[1].observation}]
    actions = ["Thought: I type b.\nAction: b", "Thought: I type x.\nAction: x", "Action: c"]
    cands = scorer.score_candidates(conv, actions)
    for a, s in zip(actions, cands.scores):
        ext = scorer.score([[*conv, {"role": "assistant", "content": a}]])[0]
        assert s == pytest.approx(ext.scores[-1], abs=1e-6)
        assert len(ext.scores) == 2
    with pytest.raises(ValueError, match="user turn"):
        scorer.score_candidates(trajectory_messages(traj, 0), actions)


def test_long_conversations_use_windows(prm_dir, traj):
    scorer = PRMScorer.load(prm_dir)
    full = scorer.score([trajectory_messages(traj)])[0]
    enc = encode_for_scoring(scorer.tokenizer, trajectory_messages(traj))
    scorer.max_length = enc.step_index[2] + 1  # steps 0..2 fit in the first pass, later ones do not
    windowed = scorer.score([trajectory_messages(traj)])[0]
    assert windowed.scores[:3] == pytest.approx(full.scores[:3], abs=1e-5)
    assert len(windowed.scores) == traj.num_steps and windowed.tokens > full.tokens


def test_encoding_is_remembered_per_tokenizer_content_and_conversation():
    from agentprm.prm import model as prm_model
    from agentprm.prm.model import encode_for_scoring
    from tests.prm_helpers import tiny_tokenizer

    tok_a, tok_b = tiny_tokenizer(), tiny_tokenizer()  # two objects, the same vocabulary and template
    conv = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "obs 1"},
        {"role": "assistant", "content": "Action: a"},
    ]
    first = encode_for_scoring(tok_a, conv)
    calls = []
    real = prm_model.tokenize_conversation
    prm_model.tokenize_conversation = lambda *a: calls.append(a) or real(*a)
    try:
        again = encode_for_scoring(tok_b, conv)
        again.input_ids.append(-1)  # a caller changing its copy does not change what is remembered
        assert encode_for_scoring(tok_a, conv) == first and not calls
        other = encode_for_scoring(tok_a, [*conv[:3], {"role": "assistant", "content": "Action: b"}])
        assert len(calls) == 1 and other.input_ids != first.input_ids
    finally:
        prm_model.tokenize_conversation = real


def test_causal_mask_dropped_only_for_right_padding_and_values_unchanged(prm_dir):
    """Right-padded batches run without a padding mask (sdpa's causal kernel); real positions must not
    change, and any other padding keeps its mask."""
    from agentprm.prm.model import causal_mask

    right = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    left = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    holes = torch.tensor([[1, 0, 1, 1]])
    assert causal_mask(right) is None
    assert causal_mask(left) is left and causal_mask(holes) is holes

    model, _, _ = ValueHeadPRM.load(prm_dir)
    torch.manual_seed(0)
    ids = torch.randint(5, 60, (3, 40))
    att = torch.ones_like(ids)
    att[1, 25:] = 0
    att[2, 7:] = 0
    with torch.no_grad():
        fast = model.token_values(ids, att)  # no mask passed down
        masked = model.backbone(input_ids=ids, attention_mask=att, use_cache=False).last_hidden_state
        slow = model.head(masked).squeeze(-1).float()
    for i, n in enumerate([40, 25, 7]):
        assert torch.allclose(fast[i, :n], slow[i, :n], atol=1e-5)
