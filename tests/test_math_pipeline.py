"""`agentprm pipeline` on the math step task (a seconds-sized config): every stage runs unchanged and the
per-env report shows math under the success metric, beam and best-of-N per RM."""

from pathlib import Path

from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.pipeline import PipelineConfig
from agentprm.trajectory import read_trajectories

ROOT = Path(__file__).resolve().parents[1]


def test_math_pipeline_end_to_end_and_report(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["pipeline", str(ROOT / "configs" / "smoke-math.yaml"), "--runs", str(tmp_path)])
    assert res.exit_code == 0, res.output
    run = tmp_path / "smoke-math"
    demos = read_trajectories(run / "demos.jsonl")
    assert len(demos) == 40 and all(t.success and t.env == "math" for t in demos)
    collected = read_trajectories(run / "trajectories.jsonl")
    assert len(collected) == 4 and all(t.status in ("done", "max_rounds") for t in collected)
    for rm in ("agentprm", "pvm", "orm"):
        assert (run / "eval" / "math" / rm / "beam_2x2.jsonl").exists()
        assert (run / "eval" / "math" / rm / "bon_2.jsonl").exists()
    report = (run / "report.md").read_text()
    assert "### math" in report and "Metric: success" in report and "| agentprm |" in report
    # the standalone report command reads the same run folder
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "### math" in (out / "report.md").read_text()


def test_math_configs_load():
    cfg = PipelineConfig.load(None, env="math")
    assert cfg.env == "math" and cfg.thought_style is None and cfg.demos == 16000 and cfg.eval_tasks == 100
    gsm = PipelineConfig.load(ROOT / "configs" / "math-gsm8k.yaml")
    assert gsm.env == "math" and gsm.beams == ["2x2", "4x4", "8x8"] and gsm.base != "tiny"
