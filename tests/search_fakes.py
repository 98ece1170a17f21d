"""Content-seeded fakes for search tests: the scripted env's optimum is known, and sampling depends only
on (seed, conversation), so batched and task-by-task search must agree."""

from __future__ import annotations

import hashlib
import random

from agentprm.conversation import Message
from agentprm.policy.base import Generation
from agentprm.testing import ScriptedEnv, ScriptedRewardModel
from agentprm.testing.fakes import WORDS


def keyed_rng(*key: object) -> random.Random:
    return random.Random(hashlib.sha256(repr(key).encode()).digest())


def _position(conv: list[Message]) -> tuple[int, int]:
    """(words typed so far, words needed) by replaying the scripted env's rules on the conversation."""
    k = int(conv[2]["content"].split()[1])
    pos = 0
    for m in conv[3:]:
        if m["role"] == "assistant":
            action = m["content"].rsplit("Action:", 1)[-1].strip()
            if pos < k and action == WORDS[pos]:
                pos += 1
    return pos, k


class KeyedPolicy:
    """Says the right next word with probability `p_right`, else a wrong one; the randomness is a pure
    function of (the conversation's seed, conversation, sample index), so batching cannot change what
    it samples. `seed` is one int for the call or one per conversation (the `Policy` protocol)."""

    name = "keyed"

    def __init__(self, p_right: float = 0.5):
        self.p_right = p_right
        self.calls = 0

    def generate(self, conversations, *, n=1, temperature=1.0, max_new_tokens=128, seed=None):
        self.calls += 1
        out = []
        for ci, conv in enumerate(conversations):
            pos, _ = _position(conv)
            text = repr([(m["role"], m["content"]) for m in conv])
            row_seed = seed[ci] if isinstance(seed, (list, tuple)) else seed  # one per conversation, or one
            gens = []
            for j in range(n):
                r = keyed_rng(row_seed, text, j).random()
                right = r < self.p_right if temperature > 0 else True
                word = WORDS[pos] if right else "z"
                out_text = f"Thought: word {pos}.\nAction: {word}"
                gens.append(Generation(out_text, len(text.split()), 5))
            out.append(gens)
        return out


def _last_action_right(conv: list[Message]) -> float:
    """Oracle PRM: 1 when the last action typed the right word, else 0."""
    before, _ = _position(conv[:-1])
    after, _ = _position(conv)
    return 1.0 if after > before else 0.0


ORACLE = ScriptedRewardModel(_last_action_right)
PROGRESS = ScriptedRewardModel(lambda conv: _position(conv)[0] / _position(conv)[1])  # 1.0 only when solved
DECEIVER = ScriptedRewardModel(lambda conv: 1.0 - _last_action_right(conv))


def make_env() -> ScriptedEnv:
    return ScriptedEnv(max_rounds=6)
