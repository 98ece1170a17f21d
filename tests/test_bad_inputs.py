"""Bad input, tried (issue 21 item 3, issue 18 item 6): each case ends in ONE line naming the fix and exit
code 2, run as a user runs it (through `main`), and nothing already written is lost. The table of cases is
in docs/reliability.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from agentprm.envs import REGISTRY, EnvSpec, register
from agentprm.testing.policies import scripted_demos, tiny_policy_dir
from agentprm.trajectory import write_trajectories
from tests.cli_helpers import run_main

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="module")
def _scripted():
    register(EnvSpec(name="scripted", factory="agentprm.testing.fakes:ScriptedEnv", description="test env"))
    yield
    REGISTRY.pop("scripted", None)


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    return tiny_policy_dir(tmp_path_factory.mktemp("bad") / "policy")


def _one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("agentprm: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)


# -- configs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: [unclosed\n", "is not valid YAML"),  # malformed
        ("nonsense_key: 1\n", "unknown config keys ['nonsense_key']"),  # unknown key
        ("demos: many\n", "config.demos = 'many' must be of type int"),  # wrong type
        ("n_per_task: -3\n", "config.n_per_task = -3 must be a whole number >= 0"),  # negative size
        (
            "objectives: agentprm\n",
            "config.objectives = 'agentprm' must be of type list[str]",
        ),  # a string where a list is meant
        ("- a\n- b\n", "must be a YAML mapping"),  # not a mapping
    ],
)
def test_bad_pipeline_config(tmp_path, text, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code, err = run_main(["pipeline", str(bad), "--runs", str(tmp_path / "runs")])
    _one_line(code, err, needle, str(bad))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.jsonl"))  # nothing started


# -- checkpoints --------------------------------------------------------------------------------------------


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_policy_checkpoint(tmp_path, policy):
    cut = tmp_path / "policy"
    shutil.copytree(policy, cut)
    _cut(cut / "model.safetensors")
    code, err = run_main(
        ["eval", "--policy", str(cut), "--env", "scripted", "--n-tasks", "1", "--out", str(tmp_path / "e.jsonl")]
    )
    _one_line(code, err, str(cut), "model.safetensors")


def test_missing_policy_checkpoint(tmp_path):
    code, err = run_main(
        ["collect", "--policy", str(tmp_path / "nope"), "--env", "scripted", "--out", str(tmp_path / "t.jsonl")]
    )
    _one_line(code, err, "does not exist")


def test_truncated_and_missing_prm(tmp_path, policy):
    traj = tmp_path / "traj.jsonl"
    write_trajectories(traj, scripted_demos(4))
    prm = tmp_path / "prm"
    code, err = run_main(
        [
            "train-prm",
            "--objective",
            "orm",
            "--trajectories",
            str(traj),
            "--init",
            str(policy),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--out",
            str(prm),
        ]
    )
    assert code == 0, err
    out = tmp_path / "s.jsonl"
    search = [
        "search",
        "--policy",
        str(policy),
        "--env",
        "scripted",
        "--strategy",
        "bon",
        "--budget",
        "2",
        "--n",
        "1",
        "--max-new-tokens",
        "4",
        "--out",
        str(out),
    ]
    _cut(prm / "value_head.safetensors")
    code, err = run_main([*search, "--rm", str(prm)])
    _one_line(code, err, str(prm), "value_head.safetensors")
    (prm / "value_head.safetensors").unlink()
    code, err = run_main([*search, "--rm", str(prm)])
    _one_line(code, err, str(prm), "train-prm")


def test_tokenizer_that_does_not_match_the_model(tmp_path, policy):
    from transformers import AutoTokenizer

    mixed = tmp_path / "mixed"
    shutil.copytree(policy, mixed)
    tok = AutoTokenizer.from_pretrained(str(mixed))
    tok.add_tokens([f"extra{i}" for i in range(400)])  # ids past the model's 300 embeddings: another model's tokenizer
    tok.save_pretrained(str(mixed))
    code, err = run_main(
        ["eval", "--policy", str(mixed), "--env", "scripted", "--n-tasks", "1", "--out", str(tmp_path / "e.jsonl")]
    )
    _one_line(code, err, str(mixed), "tokenizer", "belong to another model")


def test_policy_of_another_env(tmp_path, policy):
    other = tmp_path / "policy"
    shutil.copytree(policy, other)
    (other / "agentprm_policy.json").write_text('{"env": "textcraft"}')
    for cmd in (
        ["collect", "--n-tasks", "1", "--n-per-task", "1"],
        ["search", "--strategy", "bon", "--budget", "2", "--n", "1", "--rm", "random"],
    ):
        code, err = run_main([*cmd, "--policy", str(other), "--env", "scripted", "--out", str(tmp_path / "o.jsonl")])
        _one_line(code, err, "trained on textcraft", "--env textcraft")


# -- data files ------------------------------------------------------------------------------------------------


def test_jsonl_with_a_garbage_line_in_the_middle(tmp_path):
    traj = tmp_path / "traj.jsonl"
    write_trajectories(traj, scripted_demos(4))
    lines = traj.read_text().splitlines()
    lines.insert(2, "{this is not json")
    traj.write_text("\n".join(lines) + "\n")
    before = traj.read_bytes()
    labels = tmp_path / "labels.jsonl"
    code, err = run_main(["label", "--method", "td-gae", "--trajectories", str(traj), "--out", str(labels)])
    _one_line(code, err, f"{traj}: line 3 is not valid JSON")
    assert traj.read_bytes() == before  # the input is never "repaired" by a reader


def test_garbage_line_in_an_output_being_resumed_is_kept(tmp_path, policy):
    """A writer resuming a file with a bad line in the middle stops with one line, and loses nothing."""
    out = tmp_path / "traj.jsonl"
    write_trajectories(out, scripted_demos(3))
    lines = out.read_text().splitlines()
    lines.insert(1, "garbage")
    out.write_text("\n".join(lines) + "\n")
    before = out.read_bytes()
    code, err = run_main(
        [
            "collect",
            "--policy",
            str(policy),
            "--env",
            "scripted",
            "--n-tasks",
            "1",
            "--n-per-task",
            "1",
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
        ]
    )
    _one_line(code, err, "line 2 is not valid JSON")
    assert out.read_bytes() == before


def test_unwritable_run_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be\n")
    code, err = run_main(["demos", "--env", "textcraft", "--n", "1", "--out", str(blocker / "demos.jsonl")])
    _one_line(code, err, "cannot create directory", "choose another --out")
    code, err = run_main(["pipeline", str(ROOT / "configs" / "smoke.yaml"), "--runs", str(blocker)])
    _one_line(code, err, str(blocker), "--runs")
    assert blocker.read_text() == "a file where a folder should be\n"
