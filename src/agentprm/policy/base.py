"""The `Policy` protocol: batched generation of assistant turns for many conversations at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agentprm.conversation import Message


@dataclass
class Generation:
    text: str  # the assistant turn, without the end-of-turn token
    prompt_tokens: int  # tokens of the rendered conversation the turn was conditioned on
    generated_tokens: int  # sampled tokens, the end-of-turn token included
    finished: bool = True  # False when the new-token cap cut the turn


@runtime_checkable
class Policy(Protocol):
    name: str

    def generate(
        self,
        conversations: list[list[Message]],
        *,
        n: int = 1,
        temperature: float = 1.0,
        max_new_tokens: int = 128,
        seed: int | Sequence[int] | None = None,
    ) -> list[list[Generation]]:
        """For each conversation (ending in a user turn), `n` sampled assistant turns.

        temperature 0 means greedy. `seed` is one int for the call or one per conversation (the
        rollout engine passes one per episode and turn, so samples do not depend on batching). Returns one list of `n` generations per conversation, in order.
        """
        ...
