"""An expert that acts from any state of an episode: the labeller of DAgger (`policy/dagger.py`).

An env's demo expert (`EnvSpec.expert`) plays whole episodes from the reset. A state expert answers one
question instead: "the env is here, after these turns: what is the expert's next turn?". The policy's own
rollouts reach states the demos never visit (after a miscount, a repeated get); the answer there is the
correction the policy is trained on. Where the expert cannot act (nothing it knows reaches the goal from
here), it says why instead of inventing a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agentprm.trajectory import Step


@dataclass
class ExpertTurn:
    """The expert's next turn from one state, or why it has none."""

    output: str | None  # "Thought: ...\nAction: ..." in the demos' style; None: no label
    action: str | None  # what the env is sent (the parsed action of `output`)
    reason: str = ""  # why there is no label (output None)
    source: str = ""  # how the expert chose, e.g. TextCraft's "demo" (its own path) or "replan"
    rounds_to_goal: int | None = None  # turns the expert's continuation from here needs (this one included)

    @property
    def labelled(self) -> bool:
        return self.output is not None

    @classmethod
    def unlabelled(cls, reason: str) -> ExpertTurn:
        return cls(None, None, reason=reason)


class StateExpert(Protocol):
    def next_turn(self, env: Any, steps: list[Step], first_observation: str) -> ExpertTurn:
        """The expert's turn from `env`'s current state, reached by `steps` from `first_observation`.

        `env` is a live env at that state; the expert may clone it but must not change it."""
        ...
