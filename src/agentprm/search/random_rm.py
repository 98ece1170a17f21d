"""A reward model that scores uniformly at random: the sanity baseline every trained RM must beat."""

from __future__ import annotations

import hashlib
import random

from agentprm.conversation import Message
from agentprm.prm.base import StepScores


class RandomRewardModel:
    """Scores in [0, 1), a pure function of (seed, conversation prefix): the same step gets the same score
    whether it is scored alone, in a batch, or as a candidate. Processes no tokens (tokens = 0)."""

    def __init__(self, seed: int = 0, name: str = "random"):
        self.seed = seed
        self.name = name

    def _score(self, prefix: list[Message]) -> float:
        key = repr((self.seed, [(m["role"], m["content"]) for m in prefix])).encode()
        return random.Random(hashlib.sha256(key).digest()).random()

    def score(self, conversations: list[list[Message]]) -> list[StepScores]:
        out = []
        for conv in conversations:
            turns = [i for i, m in enumerate(conv) if m["role"] == "assistant"][1:]  # turn 0 is the "OK."
            out.append(StepScores([self._score(conv[: i + 1]) for i in turns], 0))
        return out

    def score_candidates(self, conversation: list[Message], actions: list[str]) -> StepScores:
        scores = [self._score([*conversation, {"role": "assistant", "content": a}]) for a in actions]
        return StepScores(scores, 0)
