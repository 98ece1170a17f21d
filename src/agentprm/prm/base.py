"""The `RewardModel` protocol that search, reports and RL consume.

Steps are the agent's actions: step t is assistant turn t+1 of an AgentGym conversation (turn 0 is the
"OK." acknowledgement of the system prompt, which is not scored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agentprm.conversation import Message


@dataclass
class StepScores:
    scores: list[float]  # one per agent step, in order
    tokens: int  # tokens the model processed to produce them (compute accounting)


@runtime_checkable
class RewardModel(Protocol):
    name: str

    def score(self, conversations: list[list[Message]]) -> list[StepScores]:
        """Scores of every agent step of each conversation (one forward pass per conversation)."""
        ...

    def score_candidates(self, conversation: list[Message], actions: list[str]) -> StepScores:
        """Score of each candidate assistant turn appended to `conversation` (which ends in a user turn):
        `scores[i]` is M(s_t, actions[i])."""
        ...


@runtime_checkable
class IncrementalRewardModel(RewardModel, Protocol):
    """A reward model that can score a conversation from the state of an earlier one it extends (its
    keys/values), encoding only the new tokens; scores equal `score`'s up to float rounding."""

    def score_from(self, items: list[tuple[Any, list[Message]]]) -> list[tuple[StepScores, Any]]:
        """(state or None, conversation) -> (its scores, its own state to extend later)."""
        ...
