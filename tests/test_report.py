"""`agentprm report` on a small synthetic run folder made by real searches over the scripted env."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentprm.labels.store import LabelRecord
from agentprm.trajectory import JsonlWriter
from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.report import write_report
from agentprm.prm.evaluate import auroc as auc
from agentprm.search import RandomRewardModel
from agentprm.search.runner import SearchSpec, run_search
from agentprm.testing import ScriptedRewardModel
from agentprm.trajectory import Compute, Trajectory, read_trajectories, write_trajectories
from tests.search_fakes import ORACLE, PROGRESS, KeyedPolicy, make_env

TASKS = [f"line_{1 + i % 4}_{i}" for i in range(6)]


def _named(rm, name):
    rm = ScriptedRewardModel(rm.fn) if isinstance(rm, ScriptedRewardModel) else rm
    rm.name = name
    return rm


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs") / "tiny"
    ev = root / "eval" / "scripted"
    policy = KeyedPolicy(0.4)
    (root / "config.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text("env: scripted\n")
    run_search(policy, None, make_env, TASKS, SearchSpec("greedy", "1"), ev / "greedy.jsonl", command="agentprm search --strategy greedy")
    rms = {
        "agentprm": _named(PROGRESS, "agentprm"),
        "pvm": _named(ORACLE, "pvm"),
        "orm": RandomRewardModel(1, "orm"),
        "mc": _named(ORACLE, "mc"),
        "agentprm-beta0": RandomRewardModel(2, "agentprm-beta0"),
    }
    samples = root / "eval" / "scripted" / "samples.jsonl.tmp"
    for name, rm in rms.items():
        run_search(policy, rm, make_env, TASKS, SearchSpec("bon", "8"), ev / name / "bon_8.jsonl", samples_path=samples, command=f"agentprm search --rm {name} --strategy bon --budget 8")
        run_search(policy, rm, make_env, TASKS, SearchSpec("beam", "2x2"), ev / name / "beam_2x2.jsonl", chunk_size=4)
    labels = root / "labels"
    with JsonlWriter(labels / "td-gae.jsonl") as w:
        for i, t in enumerate(TASKS):
            w.write(LabelRecord(f"t{i}", t, "td-gae", [0.0], 100, env="scripted").to_dict())
    with JsonlWriter(labels / "mc.jsonl") as w:
        for i, t in enumerate(TASKS):
            w.write(LabelRecord(f"m{i}", t, "mc", [0.0], 250, env="scripted").to_dict())
    return root


def test_report_has_every_section_plots_and_lists_what_was_not_run(run_dir):
    report = write_report(run_dir).read_text()
    for heading in ["(a) Table 1", "(b) Best-of-N", "(c) Compute-efficiency", "(d) Table 3", "(e) PRM scores", "(f) Ablation", "claims", "Not run"]:
        assert heading in report
    assert (run_dir / "plots" / "bon_scripted.png").stat().st_size > 1000
    assert (run_dir / "plots" / "scores_scripted.png").stat().st_size > 1000
    assert "orm beam @8x8" in report and "pvm beam @4x4" in report  # the paper's budgets we did not run
    assert "agentprm search --rm agentprm --strategy bon --budget 8" in report  # figures name their command
    assert "label tokens" in report and "2.5×" in report  # MC spent 250 tokens a trajectory, TD 100


def test_table1_numbers_are_the_files_success_rates(run_dir):
    report = write_report(run_dir).read_text()
    recs = read_trajectories(run_dir / "eval" / "scripted" / "pvm" / "beam_2x2.jsonl")
    expected = 100 * sum(t.success for t in recs) / len(recs)
    row = next(ln for ln in report.splitlines() if ln.startswith("| pvm |"))
    assert f"{expected:.1f}" in row
    greedy = read_trajectories(run_dir / "eval" / "scripted" / "greedy.jsonl")
    g_row = next(ln for ln in report.splitlines() if ln.startswith("| SFT (greedy) |"))
    assert f"{100 * sum(t.success for t in greedy) / len(greedy):.1f}" in g_row


def test_shared_samples_make_oracle_identical_across_rms(run_dir):
    curves = {}
    for rm in ("agentprm", "pvm", "orm"):
        recs = read_trajectories(run_dir / "eval" / "scripted" / rm / "bon_8.jsonl")
        curves[rm] = [[c["success"] for c in t.meta["search"]["candidates"]] for t in recs]
    assert curves["agentprm"] == curves["pvm"] == curves["orm"]


def test_empty_run_folder_reports_everything_not_run(tmp_path):
    (tmp_path / "eval").mkdir()
    report = write_report(tmp_path).read_text()
    assert report.count("not run") >= 5
    assert not re.search(r"\| agentprm \| \d", report)


def test_auc():
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.1], [0.9]) == 0.0
    assert auc([0.5, 0.5], [0.5]) == 0.5


def test_cli_report_and_errors(run_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 0 and "report.md" in res.output
    res = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code != 0
    res = runner.invoke(app, ["search", "--policy", str(tmp_path), "--out", str(tmp_path / "o.jsonl"), "--strategy", "beam", "--budget", "4y4"])
    assert res.exit_code != 0 and "bad --budget" in str(res.exception)


def test_cli_search_writes_resumes_and_records_its_command(tmp_path, monkeypatch):
    import agentprm.search.loading as loading
    from agentprm.envs import REGISTRY, EnvSpec

    monkeypatch.setitem(REGISTRY, "scripted", EnvSpec("scripted", "agentprm.testing.fakes:ScriptedEnv", "test env"))
    monkeypatch.setattr(loading, "load_policy", lambda path: KeyedPolicy(0.5))
    out = tmp_path / "eval" / "scripted" / "random" / "bon_4.jsonl"
    args = ["search", "--policy", str(tmp_path), "--rm", "random:3", "--strategy", "bon", "--budget", "4",
            "--env", "scripted", "--out", str(out), "--chunk", "3", "--samples", str(tmp_path / "s.jsonl")]
    runner = CliRunner()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = read_trajectories(out)
    assert len(recs) == 4 and all(len(t.meta["search"]["candidates"]) == 4 for t in recs)  # ScriptedEnv: 4 test tasks
    assert "--budget 4" in recs[0].meta["search"]["command"] and recs[0].meta["search"]["rm"] == "random"
    assert len(read_trajectories(tmp_path / "s.jsonl")) == 16
    res = runner.invoke(app, args)  # everything done: nothing re-searched, nothing re-sampled
    assert res.exit_code == 0 and len(read_trajectories(out)) == 4
    assert "4 from an earlier run" in res.output
    assert len(read_trajectories(tmp_path / "s.jsonl")) == 16
