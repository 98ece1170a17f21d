"""Pin which tokens belong to which assistant turn: the SFT mask and the PRM score index rely on it."""

import pytest

from agentprm.conversation import tokenize_conversation, trajectory_messages
from agentprm.policy.tokenizer import train_chat_tokenizer
from tests.test_trajectory import make_traj


@pytest.fixture(scope="module")
def tok():
    return train_chat_tokenizer(["Thought: get it\nAction: get 1 stick", "obs 0 obs 1 SYS OK."] * 5, 300)


def test_messages_of_step_t_end_with_action_t():
    traj = make_traj(0, 3)
    msgs = trajectory_messages(traj, 1)
    assert msgs[-1] == {"role": "assistant", "content": traj.steps[1].output}
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert msgs[4]["content"] == "obs 1"


def test_spans_cover_each_assistant_turn_and_end_on_im_end(tok):
    traj = make_traj(0, 3)
    msgs = trajectory_messages(traj)
    tc = tokenize_conversation(tok, msgs)
    assert len(tc.assistant_spans) == 4  # "OK." plus three actions
    for k, (s, e) in enumerate(tc.assistant_spans):
        text = tok.decode(tc.input_ids[s:e])
        expected = "OK." if k == 0 else traj.steps[k - 1].output
        assert text == expected + "<|im_end|>"
        assert tok.convert_ids_to_tokens(tc.input_ids[tc.last_token_of_turn(k)]) == "<|im_end|>"
        # the token right before the span is the newline after "<|im_start|>assistant"
        assert tok.decode(tc.input_ids[:s]).endswith("<|im_start|>assistant\n")


def test_prefix_tokenization_matches_full(tok):
    traj = make_traj(0, 3)
    full = tokenize_conversation(tok, trajectory_messages(traj))
    part = tokenize_conversation(tok, trajectory_messages(traj, 1))
    assert full.input_ids[: len(part.input_ids)] == part.input_ids
    assert full.assistant_spans[:3] == part.assistant_spans


def test_missing_chat_template_is_refused(tok):
    import copy

    t = copy.deepcopy(tok)
    t.chat_template = None
    with pytest.raises(ValueError, match="chat_template"):
        tokenize_conversation(t, trajectory_messages(make_traj()))
