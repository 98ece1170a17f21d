"""SkyRL adapter (integrations/skyrl.py) against the real skyrl-gym package (the `skyrl` extra)."""

import numpy as np
import pytest

skyrl_gym = pytest.importorskip("skyrl_gym")

from agentprm.envs.base import REGISTRY, EnvSpec  # noqa: E402
from agentprm.rl.rewards import potential_rewards  # noqa: E402
from agentprm.testing.fakes import ScriptedRewardModel  # noqa: E402


@pytest.fixture(autouse=True)
def scripted_env():
    REGISTRY["scripted"] = EnvSpec("scripted", "agentprm.testing.fakes:ScriptedEnv", "test env")
    yield
    REGISTRY.pop("scripted", None)


def _q(conv):  # the PRM's score: 0.3 per assistant turn that typed a word of the secret (a-f)
    words = [m["content"] for m in conv if m["role"] == "assistant"][1:]
    return 0.3 * sum(w in "abcdef" for w in words)


def test_registered_and_rewards_are_the_rl_shaping():
    from skyrl_gym.envs.registration import registry

    from agentprm.integrations.skyrl import register_envs

    ids = register_envs(["scripted"])
    assert ids == ["agentprm-scripted"] and "agentprm-scripted" in registry
    rm = ScriptedRewardModel(_q)
    env = skyrl_gym.make(
        "agentprm-scripted",
        env_config={"reward_model": rm, "shaping": "potential"},
        extras={"task_id": "line_2_0", "max_turns": 6},
    )
    assert isinstance(env, skyrl_gym.envs.base_text_env.BaseTextEnv)
    conv, _ = env.init([{"role": "user", "content": "ignored"}])
    assert conv[0]["content"].startswith("Type the secret words") and conv[-1]["content"].startswith("Type 2 words")
    outs = [env.step(a) for a in ("a", "x", "b")]
    assert [o["done"] for o in outs] == [False, False, True]
    assert outs[0]["observations"] == [{"role": "user", "content": "Good. 1 typed."}]
    q = [0.3, 0.3, 0.6]
    assert [o["metadata"]["q"] for o in outs] == pytest.approx(q)
    # the same per-turn rewards `agentprm rl` computes for the whole episode
    assert np.allclose([o["reward"] for o in outs], potential_rewards(q, 1.0, done=True))
    assert env.get_metrics()["success"] == 1.0


def test_outcome_truncation_and_errors():
    from agentprm.integrations.skyrl import AgentPRMTextEnv

    env = AgentPRMTextEnv(
        env_config={"env": "scripted", "max_turns": 2}, extras={"extra_info": {"task_id": "line_3_0"}}
    )
    env.init()
    outs = [env.step("a"), env.step("b")]
    assert [o["done"] for o in outs] == [False, True] and outs[1]["metadata"]["truncated"]
    assert [o["reward"] for o in outs] == [0.0, 0.0]
    with pytest.raises(ValueError, match="cannot be computed turn by turn"):
        AgentPRMTextEnv(
            env_config={"env": "scripted", "reward_model": ScriptedRewardModel(_q), "shaping": "min"},
            extras={"task_id": "line_1_0"},
        )
    with pytest.raises(ValueError, match="extras.task_id"):
        AgentPRMTextEnv(env_config={"env": "scripted"}, extras={})
    bad = AgentPRMTextEnv(env_config={"env": "scripted"}, extras={"task_id": "line_1_0"})
    bad.init()
    bad.env.step = lambda a: (_ for _ in ()).throw(RuntimeError("boom"))
    out = bad.step("a")
    assert out["done"] and out["metadata"]["env_error"] == "RuntimeError: boom"
    assert bad.get_metrics()["env_error"] == 1.0
