"""`agentprm sft | collect | eval` end to end on the scripted env, and bad input ending in one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.envs import REGISTRY, EnvSpec, register
from agentprm.errors import UserError
from agentprm.testing.policies import scripted_demos, tiny_policy_dir
from agentprm.trajectory import read_trajectories, write_trajectories

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def scripted_env_registered():
    register(EnvSpec(name="scripted", factory="agentprm.testing.fakes:ScriptedEnv", description="test env"))
    yield
    REGISTRY.pop("scripted", None)


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)


def test_sft_collect_eval_end_to_end(tmp_path):
    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos(8))
    pol = tmp_path / "policy"
    r = invoke(
        "sft",
        "--demos",
        demos,
        "--out",
        pol,
        "--max-steps",
        "4",
        "--batch-size",
        "4",
        "--hidden",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--checkpoint-every",
        "2",
    )
    assert r.exit_code == 0, r.output
    assert "trained on 8 demos, 4 steps" in r.output and (pol / "config.json").is_file()
    assert "already holds a trained policy" in invoke("sft", "--demos", demos, "--out", pol).output

    out = tmp_path / "traj.jsonl"
    args = (
        "collect",
        "--policy",
        pol,
        "--env",
        "scripted",
        "--n-tasks",
        "2",
        "--n-per-task",
        "3",
        "--max-new-tokens",
        "8",
        "--batch-size",
        "4",
        "--out",
        out,
    )
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "6 trajectories" in r.output and "(6 new, 0 resumed)" in r.output
    assert "(0 new, 6 resumed)" in invoke(*args).output  # a rerun resumes: nothing twice
    assert len(read_trajectories(out)) == 6

    ev = tmp_path / "eval.jsonl"
    r = invoke("eval", "--policy", pol, "--env", "scripted", "--max-new-tokens", "8", "--out", ev)
    assert r.exit_code == 0, r.output
    assert "scripted/test greedy: success" in r.output
    trajs = read_trajectories(ev)
    assert len(trajs) == 4 and all(t.temperature == 0.0 and t.seed is None for t in trajs)


def test_bad_inputs_name_the_fix(tmp_path):
    r = invoke("collect", "--policy", tmp_path / "nope", "--env", "scripted", "--out", tmp_path / "o.jsonl")
    assert isinstance(r.exception, UserError) and "does not exist" in str(r.exception)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = invoke("eval", "--policy", empty, "--env", "scripted", "--out", tmp_path / "o.jsonl")
    assert isinstance(r.exception, UserError) and "holds no model" in str(r.exception)

    pol = tiny_policy_dir(tmp_path / "pol", hidden=16, layers=1)
    (pol / "agentprm_policy.json").write_text('{"env": "textcraft"}')
    r = invoke("eval", "--policy", pol, "--env", "scripted", "--out", tmp_path / "o.jsonl")
    assert isinstance(r.exception, UserError) and "--env textcraft" in str(r.exception)

    r = invoke("sft", "--demos", tmp_path / "missing.jsonl", "--out", tmp_path / "p")
    assert isinstance(r.exception, UserError) and "agentprm demos" in str(r.exception)


def test_tokenizer_without_chat_template_exits_2_with_one_line(tmp_path):
    pol = tiny_policy_dir(tmp_path / "pol", hidden=16, layers=1)
    cfg = pol / "tokenizer_config.json"
    import json

    d = json.loads(cfg.read_text())
    d.pop("chat_template", None)
    cfg.write_text(json.dumps(d))
    for f in pol.glob("chat_template.*"):
        f.unlink()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from agentprm.cli import main; main()",
            "eval",
            "--policy",
            str(pol),
            "--env",
            "textcraft",
            "--out",
            str(tmp_path / "o.jsonl"),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no chat template" in lines[0], proc.stderr


def test_max_rounds_caps_eval_collect_and_search_episodes(tmp_path):
    pol = tiny_policy_dir(tmp_path / "pol", hidden=16, layers=1)  # untrained: no episode ends by itself
    common = ["--policy", pol, "--env", "scripted", "--n-tasks", "2", "--max-new-tokens", "4", "--max-rounds", "2"]
    for cmd in ("eval", "collect"):
        out = tmp_path / f"{cmd}.jsonl"
        r = invoke(cmd, *common, *(["--n-per-task", "2"] if cmd == "collect" else []), "--out", out)
        assert r.exit_code == 0, r.output
        trajs = read_trajectories(out)
        assert trajs and all(len(t.steps) <= 2 for t in trajs)
        assert any(t.status == "max_rounds" and len(t.steps) == 2 for t in trajs)
    out = tmp_path / "bon.jsonl"
    args = ["--policy", pol, "--env", "scripted", "--n", "2", "--max-new-tokens", "4", "--strategy", "bon"]
    r = invoke("search", *args, "--budget", "2", "--max-rounds", "2", "--out", out)
    assert r.exit_code == 0, r.output
    recs = read_trajectories(out)
    assert recs and all(len(t.steps) <= 2 for t in recs) and recs[0].meta["search"]["config"]["max_rounds"] == 2
    r = invoke("eval", "--policy", pol, "--env", "scripted", "--max-rounds", "-1", "--out", tmp_path / "x.jsonl")
    assert isinstance(r.exception, UserError) and "--max-rounds" in str(r.exception)
