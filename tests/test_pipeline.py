"""The whole pipeline on a seconds-sized config: every stage runs, writes the run folder, and resumes."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.errors import UserError
from agentprm.pipeline import PipelineConfig
from tests.cli_helpers import run_main

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_pipeline_runs_every_stage_and_resumes(tmp_path):
    runner = CliRunner()
    args = ["pipeline", str(ROOT / "configs" / "smoke.yaml"), "--runs", str(tmp_path)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    run = tmp_path / "smoke"
    for rel in ["config.yaml", "demos.jsonl", "policy/config.json", "trajectories.jsonl", "labels/td-gae.jsonl",
                "prm/agentprm/value_head.safetensors", "prm/pvm/value_head.safetensors", "prm/orm/value_head.safetensors",
                "prm/agentprm-beta0/value_head.safetensors", "prm/mc/value_head.safetensors", "labels/mc.jsonl",
                "eval/textcraft/greedy.jsonl", "eval/textcraft/mc/beam_2x2.jsonl",
                "eval/textcraft/agentprm/bon_2.jsonl", "eval/textcraft/random/bon_2.jsonl",
                "eval/textcraft/orm/beam_2x2.jsonl", "report.md"]:
        assert (run / rel).exists(), rel
    assert yaml.safe_load((run / "config.yaml").read_text())["ablation_beta0"] is True
    report = (run / "report.md").read_text()
    assert "(a) Table 1" in report and "agentprm pipeline" in report
    # a rerun skips every completed stage (only the report is rewritten)
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.output.count("already complete, skipped") == 21  # every stage but the report
    from agentprm.labels.store import read_labels

    mc = read_labels(run / "labels" / "mc.jsonl")
    assert len(mc) == 2 and len({r.task_id for r in mc.values()}) == 2  # spread over both tasks
    assert all(r.sampled_tokens > 0 and r.settings["n_mc"] == 2 for r in mc.values())


def test_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense_key: 1\n")
    code, err = run_main(["pipeline", str(bad), "--runs", str(tmp_path)])
    assert code == 2 and err.count("\n") == 1 and "unknown config keys ['nonsense_key']" in err
    with pytest.raises(UserError, match="unknown config keys"):
        PipelineConfig.load(bad)


def test_env_defaults_apply_only_without_a_config(tmp_path):
    assert PipelineConfig.load(None, env="babyai").demos == 500
    assert PipelineConfig.load(None, env="textcraft").demos == PipelineConfig().demos
    cfg = tmp_path / "c.yaml"
    cfg.write_text("demos: 7\n")
    assert PipelineConfig.load(cfg, env="babyai").demos == 7  # an explicit config is taken as written
