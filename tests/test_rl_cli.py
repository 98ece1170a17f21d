"""`agentprm rl` end to end on the scripted env with a tiny random policy; bad input is one UserError."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.envs import REGISTRY, EnvSpec, register
from agentprm.errors import UserError
from tests.prm_helpers import tiny_backbone_dir


@pytest.fixture(autouse=True)
def scripted_env_registered():
    register(EnvSpec(name="scripted", factory="agentprm.testing.fakes:ScriptedEnv", description="test env"))
    yield
    REGISTRY.pop("scripted", None)


def invoke(*args):
    return CliRunner().invoke(app, ["rl", *map(str, args)])


def test_rl_cli(tmp_path):
    pol = tiny_backbone_dir(tmp_path / "policy", hidden=32, layers=1)
    out = tmp_path / "rl"
    common = ["--policy", pol, "--env", "scripted", "--out", out, "--threads", "1"]
    r = invoke(*common, "--reward", "nope")
    assert isinstance(r.exception, UserError) and "unknown --reward" in str(r.exception)
    r = invoke(*common, "--reward", "prm")
    assert isinstance(r.exception, UserError) and "--rm" in str(r.exception)
    r = invoke(
        *common,
        "--reward",
        "prm",
        "--rm",
        "random",
        "--shaping",
        "progress",
        "--iterations",
        "1",
        "--tasks-per-iter",
        "2",
        "--episodes-per-task",
        "2",
        "--max-new-tokens",
        "4",
        "--eval-every",
        "1",
        "--eval-tasks",
        "2",
    )
    assert r.exit_code == 0, r.output
    assert "iteration 1/1: succ" in r.output  # not a terminal: one line per iteration
    assert "start (iteration 0):  test" in r.output
    start, row = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert start["iteration"] == 0 and start["test_tasks"] == 2 and start["episodes"] == 0  # the SFT policy
    assert row["episodes"] == 4 and row["used"] == 4 and row["test_tasks"] == 2 and row["label"] == "random"
    info = json.loads((out / "rl_config.json").read_text())
    assert info["complete"] and info["config"]["shaping"] == "progress" and info["critic_init"] == "policy"
    r = invoke(*common, "--reward", "prm", "--rm", "random")
    assert "holds a finished RL run" in r.output
