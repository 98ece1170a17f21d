"""Scripted fakes implementing the real protocols.

`ScriptedEnv`: task `line_<k>` asks for the secret word sequence of length `k` ("a", "b", ...); each
correct word advances, a wrong one is answered with an error text and changes nothing; reward 1 when the
whole sequence is typed. The optimum is known, so search tests can check they find it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable

from agentprm.conversation import Message
from agentprm.envs.base import StepResult, parse_react_action
from agentprm.policy.base import Generation, row_seed
from agentprm.prm.base import StepScores

WORDS = "abcdefghijklmnopqrstuvwxyz"


class ScriptedEnv:
    name = "scripted"
    system_prompt = "Type the secret words one per turn. Answer as Thought: ... Action: <word>."

    def __init__(self, max_rounds: int = 6, n_train: int = 8, n_test: int = 4):
        self.max_rounds = max_rounds
        self._n = {"train": n_train, "test": n_test}
        self.target: list[str] = []
        self.pos = 0

    def task_ids(self, split: str, n: int | None = None) -> list[str]:
        base = 0 if split == "train" else 1000
        ids = [f"line_{1 + (base + i) % 4}_{base + i}" for i in range(self._n[split])]
        return ids if n is None else [ids[i % len(ids)] for i in range(n)]

    def reset(self, task_id: str) -> str:
        k = int(task_id.split("_")[1])
        self.target = list(WORDS[:k])
        self.pos = 0
        return f"Type {k} words. Next: ?"

    def step(self, action: str) -> StepResult:
        if self.pos < len(self.target) and action == self.target[self.pos]:
            self.pos += 1
            if self.pos == len(self.target):
                return StepResult("Done!", 1.0, True)
            return StepResult(f"Good. {self.pos} typed.", 0.0, False)
        return StepResult(f"Wrong word {action!r}.", 0.0, False)

    def clone(self) -> ScriptedEnv:
        return copy.deepcopy(self)

    def parse_action(self, text: str) -> str:
        return parse_react_action(text)

    def is_success(self, reward: float, done: bool) -> bool:
        return reward >= 1.0

    def close(self) -> None:
        pass


class ScriptedPolicy:
    """Chooses each turn's action with `choose(conversation, rng) -> action`; token counts are word counts."""

    name = "scripted-policy"

    def __init__(self, choose: Callable[[list[Message], random.Random], str]):
        self.choose = choose

    def generate(self, conversations, *, n=1, temperature=1.0, max_new_tokens=128, seed=None):
        # As the HF backend: a conversation's own seed is used alone (never with its batch index), so its
        # samples do not depend on batching; one int for the call is spread as row_seed(seed, i).
        if seed is None:
            conv_seeds: list[int | None] = [None] * len(conversations)
        elif isinstance(seed, int):
            conv_seeds = [row_seed(seed, i) for i in range(len(conversations))]
        else:
            conv_seeds = list(seed)
            if len(conv_seeds) != len(conversations):
                raise ValueError(f"got {len(conv_seeds)} seeds for {len(conversations)} conversations")
        out = []
        for conv, conv_seed in zip(conversations, conv_seeds):
            rng = random.Random(row_seed(conv_seed, len(conv)) if conv_seed is not None else None)
            prompt_tokens = sum(len(m["content"].split()) for m in conv)
            gens = []
            for _ in range(n):
                action = self.choose(conv, rng)
                text = f"Thought: I type {action}.\nAction: {action}"
                gens.append(Generation(text, prompt_tokens, len(text.split()) + 1))
            out.append(gens)
        return out


class ScriptedRewardModel:
    """Scores step t with `fn(conversation_through_step_t) -> float`; tokens are word counts."""

    name = "scripted-rm"

    def __init__(self, fn: Callable[[list[Message]], float]):
        self.fn = fn

    def score(self, conversations: list[list[Message]]) -> list[StepScores]:
        out = []
        for conv in conversations:
            idx = [i for i, m in enumerate(conv) if m["role"] == "assistant"][1:]
            out.append(StepScores([self.fn(conv[: i + 1]) for i in idx], sum(len(m["content"].split()) for m in conv)))
        return out

    def score_candidates(self, conversation: list[Message], actions: list[str]) -> StepScores:
        scores = [self.fn([*conversation, {"role": "assistant", "content": a}]) for a in actions]
        return StepScores(scores, sum(len(m["content"].split()) for m in conversation) * len(actions))
