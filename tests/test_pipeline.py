"""The whole pipeline on a seconds-sized config: every stage runs, writes the run folder, and resumes."""

import re
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
    for rel in [
        "config.yaml",
        "demos.jsonl",
        "policy/config.json",
        "trajectories.jsonl",
        "labels/td-gae.jsonl",
        "prm/agentprm/value_head.safetensors",
        "prm/pvm/value_head.safetensors",
        "prm/orm/value_head.safetensors",
        "prm/agentprm-beta0/value_head.safetensors",
        "prm/mc/value_head.safetensors",
        "labels/mc.jsonl",
        "eval/textcraft/greedy.jsonl",
        "eval/textcraft/mc/beam_2x2.jsonl",
        "eval/textcraft/agentprm/bon_2.jsonl",
        "eval/textcraft/random/bon_2.jsonl",
        "eval/textcraft/orm/beam_2x2.jsonl",
        "policy-rft/config.json",
        "eval/textcraft/rft/greedy.jsonl",
        "report.md",
    ]:
        assert (run / rel).exists(), rel
    assert yaml.safe_load((run / "config.yaml").read_text())["ablation_beta0"] is True
    report = (run / "report.md").read_text()
    assert "(a) Table 1" in report and "agentprm pipeline" in report
    assert "## (g) PRMs" in report and "| agentprm-beta0 | agentprm | 0 | 4 |" in report  # beta 0, 4 trajectories
    assert "| RFT (greedy) |" in report
    assert re.search(r"\| mc \| mc \| [\d.]+ \| 2 \| \d+ \| \d+ \|", report)  # MC: the 2 seeds, its epochs and steps
    assert "headroom @2" in report and "95% paired-bootstrap interval" in report
    # a rerun skips every completed stage (only the report is rewritten)
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.output.count("already complete, skipped") == 23  # every stage but the report
    from agentprm.labels.store import read_labels

    mc = read_labels(run / "labels" / "mc.jsonl")
    assert len(mc) == 2 and len({r.task_id for r in mc.values()}) == 2  # spread over both tasks
    assert all(r.sampled_tokens > 0 and r.settings["n_mc"] == 2 for r in mc.values())
    _stale_and_partial_results_are_redone_and_never_reported(runner, args, run)


def _stale_and_partial_results_are_redone_and_never_reported(runner, args, run: Path) -> None:
    """Issue 18: a result made under other settings (stale) or left unfinished (partial) is listed apart in the
    report and used nowhere; a rerun redoes exactly those stages."""
    import json

    from agentprm.pipeline import Pipeline, Provenance
    from agentprm.report import write_report
    from agentprm.run_layout import RunLayout
    from agentprm.search.budget import Budget

    lay = RunLayout(run)
    stale, partial = lay.result("textcraft", "beam", "orm", "2x2"), lay.result("textcraft", "bon", "random", "2")
    prov = Provenance.read(lay.provenance(stale))
    assert prov.complete and prov.key == Pipeline.for_folder(run).search_key("beam", "orm", Budget(2, 2))
    assert prov.inputs["prm"].endswith("prm/orm") and prov.inputs["tasks"]["n"] == 2 and prov.inputs["budget"] == "2x2"
    rec = json.loads(stale.read_text().splitlines()[0])
    assert rec["meta"]["search"]["config"]["provenance"]["key"] == prov.key  # every record names what made it
    Provenance(**{**json.loads(lay.provenance(stale).read_text()), "key": "made-by-an-old-config"}).write(
        lay.provenance(stale)
    )
    Provenance(**{**json.loads(lay.provenance(partial).read_text()), "complete": False}).write(lay.provenance(partial))
    report = write_report(run).read_text()
    tail = report[report.index("## Stale or partial results") : report.index("## Not run")]
    assert (
        "`eval/textcraft/orm/beam_2x2.jsonl`: stale" in tail and "`eval/textcraft/random/bon_2.jsonl`: partial" in tail
    )
    assert f"agentprm pipeline {run / 'config.yaml'}" in tail
    assert "orm/beam_2x2.jsonl (" not in report.replace(tail, "") and "random/bon_2.jsonl (" not in report.replace(
        tail, ""
    )
    table1 = report[report.index("(a) Table 1") : report.index("(b) Best-of-N")]
    assert next(ln for ln in table1.splitlines() if ln.startswith("| orm |")).endswith("| not run |")
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.output.count("already complete, skipped") == 21  # all but the stale and the partial stage
    assert "search beam@2x2 orm: made under other settings: removed, redoing" in res.output
    assert "none: every result file found is complete" in (run / "report.md").read_text()


def test_a_config_change_invalidates_exactly_the_stages_it_affects():
    from dataclasses import replace

    from agentprm.pipeline import Pipeline
    from agentprm.search.budget import Budget

    cfg = PipelineConfig.load(ROOT / "configs" / "smoke.yaml")

    def keys(c):
        p = Pipeline(c, "/nonexistent")
        out = {
            "demos": p.demos_key(),
            "sft": p.sft_key(),
            "collect": p.collect_key(),
            "label": p.label_key(),
            "greedy": p.search_key("greedy", None, Budget(1)),
            "random": p.search_key("bon", "random", Budget(2)),
        }
        out.update({f"prm {n}": p.prm_key(n) for n in ("agentprm", "mc")})
        out.update({f"bon {n}": p.search_key("bon", n, Budget(2)) for n in ("agentprm", "mc")})
        return out

    base = keys(cfg)

    def changed(**kw):
        new = keys(replace(cfg, **kw))
        return sorted(k for k in base if base[k] != new[k])

    assert changed(threads=2, device="cpu", batch_size=7, name="other") == []
    assert changed(eval_tasks=3) == ["bon agentprm", "bon mc", "greedy", "random"]
    assert changed(prm=replace(cfg.prm, lr=1e-5)) == ["bon agentprm", "bon mc", "prm agentprm", "prm mc"]
    assert changed(n_mc=3) == ["bon mc", "label", "prm mc"]
    assert changed(sft=replace(cfg.sft, lr=1e-4)) == sorted(set(base) - {"demos"})
    assert changed(demos=41) == sorted(base)
    assert changed(max_rounds=5) == sorted(set(base) - {"demos", "sft"})  # every episode after the demos


def test_max_rounds_caps_every_env_the_pipeline_makes():
    from dataclasses import replace

    from agentprm.pipeline import Pipeline

    cfg = PipelineConfig.load(ROOT / "configs" / "smoke.yaml")
    assert Pipeline(cfg, "/nonexistent")._env_factory()().max_rounds == 20  # TextCraft's own (AgentGym's)
    env = Pipeline(replace(cfg, max_rounds=3), "/nonexistent")._env_factory()()
    assert env.max_rounds == 3 and Pipeline(replace(cfg, max_rounds=3), "/x")._env_factory()() is not env


def test_typed_sections_reject_unknown_and_mistyped_keys_in_one_line(tmp_path):
    from agentprm.errors import UserError

    cfg = PipelineConfig.load(ROOT / "configs" / "smoke.yaml")
    assert cfg.sft.max_steps == 4 and cfg.sft.tiny.hidden_size == 32 and cfg.prm.batch_size == 4
    assert cfg.prm.lr == 3e-4  # the tiny preset under the config's overrides
    bad = tmp_path / "b.yaml"
    for text, msg in [
        ("sft: {epoch: 3}\n", "unknown sft keys ['epoch']"),
        ("prm: {lr: fast}\n", "prm.lr = 'fast' must be of type float"),
        ("sft: {tiny: {hidden: 3}}\n", "unknown sft.tiny keys ['hidden']"),
        ("bon: many\n", "config.bon = 'many'"),
        ("beams: ['4y4']\n", "bad --budget '4y4'"),
    ]:
        bad.write_text(text)
        with pytest.raises(UserError, match=re.escape(msg)):
            PipelineConfig.load(bad)
    # a pretrained base gets the paper's PRM settings (lr 1e-6, 5 epochs) unless the config sets them
    bad.write_text("base: smollm2\n")
    paper = PipelineConfig.load(bad).prm
    assert paper.lr == 1e-6 and paper.epochs == 5
    # the written config.yaml loads back to the same config
    from dataclasses import asdict

    import yaml

    bad.write_text(yaml.safe_dump(asdict(cfg)))
    assert PipelineConfig.load(bad) == cfg


def test_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nonsense_key: 1\n")
    code, err = run_main(["pipeline", str(bad), "--runs", str(tmp_path)])
    assert code == 2 and err.count("\n") == 1 and "unknown config keys ['nonsense_key']" in err
    with pytest.raises(UserError, match="unknown config keys"):
        PipelineConfig.load(bad)


def test_bad_config_from_the_command_line_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    import sys

    from agentprm.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("sft: {epochz: 1}\n")
    monkeypatch.setattr(sys, "argv", ["agentprm", "pipeline", str(bad), "--runs", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "unknown sft keys ['epochz']" in err


def test_env_defaults_apply_only_without_a_config(tmp_path):
    assert PipelineConfig.load(None, env="babyai").demos == 500
    assert PipelineConfig.load(None, env="textcraft").demos == PipelineConfig().demos
    cfg = tmp_path / "c.yaml"
    cfg.write_text("demos: 7\n")
    assert PipelineConfig.load(cfg, env="babyai").demos == 7  # an explicit config is taken as written


def test_redo_names_a_stage_and_takes_its_readers_along(tmp_path):
    from agentprm.errors import UserError
    from agentprm.pipeline import Pipeline

    cfg = PipelineConfig.load(ROOT / "configs" / "smoke.yaml")
    stages = Pipeline(cfg, tmp_path).stages()

    def redo(*names):
        return sorted(Pipeline(cfg, tmp_path, redo=names)._redo_set(stages))

    assert redo("train-prm orm") == ["search beam@2x2 orm", "search bon@2 orm", "train-prm orm"]
    assert redo("label") == ["label", "search beam@2x2 mc", "search bon@2 mc", "train-prm mc"]
    assert len(redo("sft")) == len(stages) - 1  # everything but the demos reads the policy
    assert redo("search") == sorted(s.name for s in stages if s.name.startswith("search"))
    with pytest.raises(UserError, match="--redo 'sfx' names no stage"):
        redo("sfx")
    assert len(Pipeline(cfg, tmp_path, force=True)._redo_set(stages)) == len(stages)


def test_mc_prm_gets_the_optimizer_steps_of_the_td_prms():
    import math

    from agentprm.pipeline import mc_epochs

    # 384 TD trajectories at batch 8, 1 epoch = 48 steps; 24 MC seeds = 3 steps an epoch -> 16 epochs = 48 steps
    assert mc_epochs(1, 8, 384, 24) == 16
    for td, mc, bs, ep in [(500, 37, 8, 2), (20, 20, 4, 1), (100, 1, 16, 3)]:
        e = mc_epochs(ep, bs, td, mc)
        steps_td, per = math.ceil(td / bs) * ep, math.ceil(mc / bs)
        assert abs(e * per - steps_td) <= per / 2 + 1e-9 or e == 1


@pytest.mark.parametrize("rft_steps", [1, 28, 500])
def test_rft_continues_at_the_lr_sft_ended_at_instead_of_climbing_back(rft_steps):
    """RFT (the pipeline's `rft` stage) continues a trained policy: by default its lr never rises above the
    one SFT's schedule ended at. Before session 10 it restarted SFT's warm-up, so a short RFT (28 steps on
    TextCraft) climbed back to ~10x SFT's last lr and took greedy from 23% to 7%; `rft_lr` keeps that."""
    from agentprm.policy.sft import lr_schedule

    cfg = PipelineConfig.from_dict({"env": "textcraft", "rft": True})
    sft_total = 2460
    sft_last = lr_schedule(sft_total - 1, sft_total, cfg.sft)
    rft = cfg.rft_sft_config()
    rft_lrs = [lr_schedule(s, rft_steps, rft) for s in range(rft_steps)]
    assert rft.epochs == cfg.rft_epochs and rft.batch_size == cfg.sft.batch_size
    assert max(rft_lrs) <= sft_last * 1.001 and rft_lrs[0] == pytest.approx(sft_last, rel=1e-3)
    old = PipelineConfig.from_dict({"env": "textcraft", "rft": True, "rft_lr": cfg.sft.lr}).rft_sft_config()
    old_lrs = [lr_schedule(s, rft_steps, old) for s in range(rft_steps)]
    assert max(old_lrs) > 5 * sft_last or rft_steps == 1  # the documented alternative: SFT's schedule again
    with pytest.raises(UserError, match="rft_lr"):
        PipelineConfig.from_dict({"rft_lr": 0})


def test_rft_lr_changes_only_the_rft_stages():
    from dataclasses import replace

    from agentprm.pipeline import Pipeline
    from agentprm.search.budget import Budget

    cfg = PipelineConfig.load(ROOT / "configs" / "smoke.yaml")
    p, q = Pipeline(cfg, "/nonexistent"), Pipeline(replace(cfg, rft_lr=1e-3), "/nonexistent")
    assert p.rft_key() != q.rft_key()
    assert p.search_key("greedy", "rft", Budget(1)) != q.search_key("greedy", "rft", Budget(1))
    assert p.search_key("greedy", None, Budget(1)) == q.search_key("greedy", None, Budget(1))
    assert p.prm_key("agentprm") == q.prm_key("agentprm") and p.collect_key() == q.collect_key()
