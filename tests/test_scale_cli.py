"""The scale options are registered and explained, bad values end in one line, and the paper-scale
presets load with the paper's values."""

import pytest
from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.pipeline import PipelineConfig


@pytest.mark.parametrize(
    "cmd,opts",
    [
        ("collect", ["--ray", "--backend"]),
        ("eval", ["--ray", "--backend"]),
        ("search", ["--ray", "--backend", "http"]),
        ("label", ["--ray"]),
        ("serve-prm", ["--max-wait-ms", "--max-request-conversations", "/get_reward"]),
    ],
)
def test_help_explains_the_scale_options(cmd, opts):
    out = CliRunner().invoke(app, [cmd, "--help"], terminal_width=200).output
    for o in opts:
        assert o in out


def test_bad_scale_inputs_are_one_line(tmp_path):
    r = CliRunner().invoke(app, ["serve-prm", "--rm", str(tmp_path)])
    assert r.exit_code != 0 and "not a PRM dir" in str(r.exception)
    r = CliRunner().invoke(
        app,
        [
            "search",
            "--policy",
            str(tmp_path),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--samples",
            str(tmp_path / "s.jsonl"),
            "--ray",
            "auto",
        ],
    )
    assert "--samples is not supported with --ray" in str(r.exception)


@pytest.mark.parametrize("size", ["0.5b", "3b"])
def test_paper_presets_carry_the_papers_values(size):
    cfg = PipelineConfig.load(f"configs/qwen2.5-{size}.yaml")
    assert cfg.device == "cuda" and cfg.base.endswith(f"Qwen2.5-{size.upper()}-Instruct")
    assert (cfg.demos, cfg.sft.lr, cfg.n_per_task, cfg.collect_temperature) == (300, 1e-5, 16, 1.0)
    prm = cfg.prm  # a pretrained base gets the paper preset (prm_preset: auto)
    assert (prm.lr, prm.epochs, prm.beta, prm.gamma, prm.lam) == (1e-6, 5, 1.0, 1.0, 0.95)
    assert cfg.bon == 64 and cfg.beams == ["2x2", "4x4", "8x8"] and cfg.collect_tasks is None and cfg.eval_tasks is None
