"""verl adapter (integrations/verl.py): what runs without verl — the episode loop with a fake rollout
server and the token placement of per-turn rewards. The verl classes themselves need verl (GPU)."""

import asyncio

import numpy as np
import pytest

from agentprm.integrations import verl as V
from agentprm.rl.rewards import potential_rewards
from agentprm.testing.fakes import ScriptedEnv, ScriptedRewardModel
from tests.prm_helpers import tiny_tokenizer


def test_turn_reward_row():
    assert V.turn_reward_row(5, [1, 3], [0.5, -1.0]) == [0.0, 0.5, 0.0, -1.0, 0.0]
    assert V.turn_reward_row(3, [1, 7], [1.0, 2.0]) == [0.0, 1.0, 2.0]  # cut off: kept at the last index
    with pytest.raises(ValueError):
        V.turn_reward_row(3, [1], [])


def test_run_episode_tokens_and_rewards():
    tok = tiny_tokenizer()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    script = iter(["Action: a", "Action: x", "Action: b"])

    async def generate(ids):
        return tok(next(script), add_special_tokens=False)["input_ids"] + [end]

    rm = ScriptedRewardModel(lambda conv: 0.25 * len([m for m in conv if m["role"] == "assistant"]))
    env = ScriptedEnv()
    ep = asyncio.run(V.run_episode(generate, tok, env, "line_2_0", reward_model=rm, shaping="potential"))
    assert ep.turns == 3 and ep.success and ep.env_error is None
    # each turn's reward sits on its own end-of-turn token, and equals agentprm rl's reward for that turn
    assert [ep.response_ids[i] for i in ep.turn_ends] == [end] * 3
    assert np.allclose(ep.turn_rewards, potential_rewards(ep.scores, 1.0, done=True))
    # policy tokens are masked 1, observation/template tokens 0; the sequence is the rendered conversation
    gen = [t for t, m in zip(ep.response_ids, ep.response_mask) if m]
    assert tok.decode(gen, skip_special_tokens=True).count("Action:") == 3
    text = tok.decode(ep.prompt_ids + ep.response_ids)
    assert "Good. 1 typed." in text and "Wrong word" in text
    obs_tokens = [t for t, m in zip(ep.response_ids, ep.response_mask) if not m]
    assert "Action" not in tok.decode(obs_tokens)


def test_env_error_and_refusals():
    tok = tiny_tokenizer()

    async def generate(ids):
        return tok("Action: a", add_special_tokens=False)["input_ids"]

    env = ScriptedEnv()
    env.step = lambda a: (_ for _ in ()).throw(RuntimeError("down"))
    ep = asyncio.run(V.run_episode(generate, tok, env, "line_2_0"))
    assert ep.env_error == "RuntimeError: down" and ep.turn_rewards == []
    with pytest.raises(ValueError, match="turn by turn"):
        asyncio.run(V.run_episode(generate, tok, ScriptedEnv(), "line_1_0", reward_model=object(), shaping="min"))
    if not V._HAVE_VERL:
        with pytest.raises(ImportError, match="needs verl"):
            V.AgentPRMAgentLoop  # noqa: B018
