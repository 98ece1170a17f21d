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


_MASK64 = (1 << 63) - 1


def row_seed(seed: int, k: int) -> int:
    """A seed for sample `k` derived from `seed` (splitmix-style mixing, stable across runs and Pythons).
    Here, beside the `Policy` protocol, so rollouts, fakes and RL derive seeds without importing a backend."""
    z = (seed * 0x9E3779B97F4A7C15 + (k + 1) * 0xBF58476D1CE4E5B9) & _MASK64
    z ^= z >> 31
    z = (z * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 29)
