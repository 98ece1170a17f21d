"""The `Env` protocol every environment implements, and the registry that names them.

An env serves AgentGym-style tasks: `reset(task_id)` gives the first observation, `step(action)` the
next one with reward and done. Task ids are AgentGym's (`textcraft_12`, `babyai_40`, `webshop_7`).
Invalid actions are answered with the env's own error text (that is an observation, not an error);
an env that itself fails raises `agentprm.errors.EnvError`, which rollouts record as `env_error`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentprm.errors import UserError


@dataclass
class StepResult:
    observation: str
    reward: float
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Env(Protocol):
    name: str
    max_rounds: int
    system_prompt: str

    def task_ids(self, split: str, n: int | None = None) -> list[str]:
        """Ids of a split ("train" | "test"); the first `n` where given (envs whose id space is
        unbounded, as AgentGym's modulo ids are, may return more than the base pool)."""
        ...

    def reset(self, task_id: str) -> str: ...

    def step(self, action: str) -> StepResult: ...

    def clone(self) -> Env:
        """An independent copy at the same state (for beam search)."""
        ...

    def parse_action(self, text: str) -> str:
        """The action in a ReAct output (text after the last `Action:`), cleaned as AgentGym does."""
        ...

    def is_success(self, reward: float, done: bool) -> bool: ...

    def close(self) -> None: ...


SPLITS = ("train", "test")

# AgentGym's client keeps only these characters of an action and collapses whitespace.
_ACTION_JUNK = re.compile(r"[^A-Za-z0-9, ]")


def parse_react_action(text: str, keep: re.Pattern[str] | None = _ACTION_JUNK) -> str:
    """Text after the last `Action:`; AgentGym's cleaning (drop chars outside [A-Za-z0-9, ], squeeze spaces).

    AgentGym's client rejects outputs with more than one `Action:`; we take the last one instead and
    leave the verdict to the env, which answers an unparseable action with its own error text.
    """
    idx = text.rfind("Action:")
    action = text[idx + len("Action:") :] if idx >= 0 else text
    # AgentGym reads `Action:\s*(.*?)(?=\n|$)`: the first line after the marker (blank lines skipped).
    action = action.strip().split("\n")[0]
    if keep is not None:
        action = keep.sub("", action)
    return " ".join(action.split())


@dataclass
class EnvSpec:
    """How to build an env and its expert, and what its reports measure."""

    name: str
    factory: str  # "module:callable" -> Env, imported lazily so `--help` stays fast
    description: str
    expert: str | None = None  # "module:callable" (env, task_id, seed) -> Trajectory
    metric: str = "success"  # "success" or "reward" (BabyAI's is mean reward)
    # True when the expert plans from observations alone, so it can drive a remote (AgentGym) env too;
    # BabyAI's BFS and WebShop's oracle read the env's hidden state.
    expert_observation_only: bool = False
    # `agentprm demos` default: write failed expert episodes too (TextCraft's issue asks for every task
    # with a `success` field) or only successful ones (BabyAI's demos are SFT data).
    demos_keep_failures: bool = True
    # "module:callable" (traj, rng, copy_index) -> Trajectory: a changed copy of a demo for SFT
    # (`agentprm demos --renamed-copies K`); None where the env has no such augmentation.
    augmenter: str | None = None
    # "module:callable" (thought_style=None, seed=0) -> envs.state_expert.StateExpert: the expert's next turn
    # from any mid-episode state (`agentprm dagger`'s labeller); None where the expert only plays from reset.
    state_expert: str | None = None

    def make(self, **kwargs: Any) -> Env:
        return _load(self.factory)(**kwargs)

    def maker(self, max_rounds: int | None = None) -> Callable[[], Env]:
        """A zero-argument env factory; `max_rounds` caps every episode below the env's own budget
        (AgentGym's, the paper's) for every loop that reads `env.max_rounds` (rollouts, MC, beam)."""
        if not max_rounds:
            return self.make

        def make() -> Env:
            env = self.make()
            env.max_rounds = max_rounds
            return env

        return make

    def make_expert(self) -> Callable[..., Any]:
        if self.expert is None:
            raise UserError(f"env {self.name!r} has no expert solver")
        return _load(self.expert)

    def make_state_expert(self, thought_style: str | None = None, seed: int = 0) -> Any:
        if self.state_expert is None:
            raise UserError(f"env {self.name!r} has no expert that acts from a mid-episode state (DAgger)")
        return _load(self.state_expert)(thought_style=thought_style, seed=seed)

    def make_augmenter(self) -> Callable[..., Any]:
        if self.augmenter is None:
            raise UserError(f"env {self.name!r} has no demo augmentation; drop --renamed-copies")
        return _load(self.augmenter)


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


REGISTRY: dict[str, EnvSpec] = {}
# Env names served elsewhere, by name prefix: (spec maker `module:function(name) -> EnvSpec`,
# imported on first use like `EnvSpec.factory`; the form of such a name, for error messages).
PREFIXES: dict[str, tuple[str, str]] = {}


def register(spec: EnvSpec) -> None:
    REGISTRY[spec.name] = spec


def register_prefix(prefix: str, spec_maker: str, usage: str) -> None:
    """Env names starting with `prefix` get their spec from `spec_maker` (e.g. `agentgym:<name>@URL`)."""
    PREFIXES[prefix] = (spec_maker, usage)


def get_spec(name: str) -> EnvSpec:
    for prefix, (spec_maker, _) in PREFIXES.items():
        if name.startswith(prefix):
            return _load(spec_maker)(name)
    if name not in REGISTRY:
        families = "".join(f" (or {usage})" for _, usage in PREFIXES.values())
        raise UserError(f"unknown env {name!r}; choose one of: {', '.join(sorted(REGISTRY))}{families}")
    return REGISTRY[name]


def make_env(name: str, **kwargs: Any) -> Env:
    return get_spec(name).make(**kwargs)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return split
