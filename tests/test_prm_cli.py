"""`agentprm label | train-prm | export-prm-data | prm-separation` end to end on scripted trajectories."""

import json

import pytest
from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.envs import REGISTRY, EnvSpec, register
from agentprm.errors import UserError
from agentprm.testing.fakes import ScriptedPolicy
from agentprm.trajectory import write_trajectories
from tests.prm_helpers import scripted_dataset, tiny_backbone_dir
from tests.test_mc_labels import oracle


def oracle_policy():
    return ScriptedPolicy(oracle)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    write_trajectories(d / "traj.jsonl", scripted_dataset(12, seed=1, ps=(0.0, 1.0)))
    tiny_backbone_dir(d / "policy")
    if "scripted" not in REGISTRY:
        register(EnvSpec(name="scripted", factory="agentprm.testing.fakes:ScriptedEnv", description="test env"))
    return d


def run(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, res.output
    return res.output


def test_label_all_methods_and_export(files):
    d = files
    for method in ("td-gae", "pvm", "orm"):
        out = run("label", "--method", method, "--trajectories", d / "traj.jsonl", "--out", d / f"{method}.jsonl")
        assert "labelled 12" in out
    out = run(
        "label",
        "--method",
        "mc",
        "--trajectories",
        d / "traj.jsonl",
        "--out",
        d / "mc.jsonl",
        "--env",
        "scripted",
        "--policy",
        "tests.test_prm_cli:oracle_policy",
        "--n-mc",
        "2",
    )
    assert "labelled 12" in out
    recs = {m: [json.loads(line) for line in open(d / f"{m}.jsonl")] for m in ("td-gae", "pvm", "orm", "mc")}
    assert all(len(r) == 12 for r in recs.values())
    assert all(r["sampled_tokens"] > 0 for r in recs["td-gae"])
    td_tokens = sum(r["sampled_tokens"] for r in recs["td-gae"])
    mc_tokens = sum(r["sampled_tokens"] for r in recs["mc"])
    assert mc_tokens > td_tokens  # rollouts cost on top of the seed trajectories
    # rerun resumes: nothing left to do
    assert "labelled 0" in run("label", "--method", "pvm", "--trajectories", d / "traj.jsonl", "--out", d / "pvm.jsonl")
    run("export-prm-data", "--trajectories", d / "traj.jsonl", "--labels", d / "td-gae.jsonl", "--out", d / "trl.jsonl")
    row = json.loads(open(d / "trl.jsonl").readline())
    assert set(row) >= {"prompt", "completions", "labels"} and len(row["completions"]) == len(row["labels"])
    assert all(isinstance(v, bool) for v in row["labels"])


def test_train_all_objectives(files):
    d = files
    if not (d / "mc.jsonl").exists():
        test_label_all_methods_and_export(files)
    for obj in ("agentprm", "pvm", "orm", "mc"):
        args = [
            "train-prm",
            "--objective",
            obj,
            "--trajectories",
            d / "traj.jsonl",
            "--out",
            d / f"prm_{obj}",
            "--init",
            d / "policy",
            "--epochs",
            "1",
        ]
        if obj == "mc":
            args += ["--labels", d / "mc.jsonl"]
        out = run(*args)
        assert f"trained {obj} PRM (tiny preset) on 12 trajectories" in out
        assert (d / f"prm_{obj}" / "value_head.safetensors").is_file()
    assert "already holds" in run(
        "train-prm", "--trajectories", d / "traj.jsonl", "--out", d / "prm_agentprm", "--init", d / "policy"
    )
    sep = json.loads(run("prm-separation", "--prm", d / "prm_agentprm", "--trajectories", d / "traj.jsonl"))
    assert sep["n_success"] + sep["n_failed"] == 12


def test_bad_input_is_one_line_user_error(files):
    d = files
    with pytest.raises(UserError, match="--method"):
        run("label", "--method", "nope", "--trajectories", d / "traj.jsonl", "--out", d / "x.jsonl")
    with pytest.raises(UserError, match="--labels"):
        run(
            "train-prm",
            "--objective",
            "mc",
            "--trajectories",
            d / "traj.jsonl",
            "--out",
            d / "x",
            "--init",
            d / "policy",
        )
    with pytest.raises(UserError, match="not an HF model dir"):
        run("train-prm", "--trajectories", d / "traj.jsonl", "--out", d / "x", "--init", d)
    with pytest.raises(UserError, match="does not exist"):
        run("label", "--trajectories", d / "missing.jsonl", "--out", d / "x.jsonl")
