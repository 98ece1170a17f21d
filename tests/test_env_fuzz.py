"""Fuzzing every env's `step` (issue 21 item 5; TextCraft's is in test_textcraft.py): any action string,
well-formed or not, gets an observation in the game's own text, a reward in [0, 1] and a bool done, and
never an exception while the episode is live. Actions mix each env's own samples, their near-misses and
arbitrary text (unicode, brackets, newlines)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentprm.envs import make_env

ENVS = {name: make_env(name) for name in ("babyai", "webshop")}
TASKS = {name: env.task_ids("test", 3) for name, env in ENVS.items()}


def _own_actions(name: str) -> list[str]:
    env, rng = ENVS[name], random.Random(0)
    env.reset(TASKS[name][0])
    return sorted({env.sample_action(rng) for _ in range(40)})


def _actions(name: str):
    own = _own_actions(name)
    brackets = st.builds(
        lambda verb, arg: f"{verb}[{arg}]", st.sampled_from(["click", "search", "Click", "go"]), st.text(max_size=20)
    )
    mutated = st.builds(lambda a, cut: a[:cut], st.sampled_from(own), st.integers(0, 12))
    return st.one_of(st.sampled_from(own), brackets, mutated, st.text(max_size=40))


@pytest.mark.parametrize("name", sorted(ENVS))
def test_step_takes_any_action(name):
    env = ENVS[name]

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(TASKS[name]), st.lists(_actions(name), min_size=1, max_size=8))
    def run(task, actions):
        env.reset(task)
        for action in actions:
            r = env.step(action)
            assert isinstance(r.observation, str) and r.observation
            assert 0.0 <= r.reward <= 1.0 and isinstance(r.done, bool)
            if r.done:
                break

    run()
