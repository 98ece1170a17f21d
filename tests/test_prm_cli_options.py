"""`agentprm train-prm`'s training options are derived from `PRMTrainConfig` (one declaration per knob):
every field is an option with its help, a flag given lands in the config the trainer receives, and a
preset fills what is not given."""

import dataclasses
import json
from types import SimpleNamespace

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

import agentprm.prm.train
from agentprm.cli import app
from agentprm.cli.common import config_options
from agentprm.prm.config import PRMTrainConfig
from agentprm.trajectory import write_trajectories
from agentprm.typed_config import setting, setting_help
from tests.prm_helpers import scripted_dataset

FIELDS = dataclasses.fields(PRMTrainConfig)
# A valid value other than the default for each string field (validate() rejects arbitrary strings).
STR_VALUES = {"objective": "pvm", "bootstrap": "next", "reduction": "trajectory", "head_activation": "sigmoid"}
STR_VALUES["device"] = "cpu"


def small_init(path, hidden=32, layers=2):
    """An HF dir as far as train-prm reads it before training: config.json (its size picks the auto preset)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(
        json.dumps({"hidden_size": hidden, "num_hidden_layers": layers, "vocab_size": 400})
    )
    return path


@pytest.fixture
def received(tmp_path, monkeypatch):
    """Runs `train-prm` with the trainer replaced by a recorder; returns (run, configs received)."""
    got = []

    def fake_train(trajs, init, out, cfg, **kw):
        got.append(cfg)
        return SimpleNamespace(
            resumed_from_step=0, items=len(trajs), steps=1, first_loss=1.0, last_loss=0.5, tokens_per_s=1.0, skipped={}
        )

    monkeypatch.setattr(agentprm.prm.train, "train_prm", fake_train)
    write_trajectories(tmp_path / "traj.jsonl", scripted_dataset(3, seed=1, ps=(0.0, 1.0)))
    small = small_init(tmp_path / "small")

    def run(*args, init=small):
        base = ["train-prm", "--trajectories", tmp_path / "traj.jsonl", "--out", tmp_path / "prm", "--init", init]
        res = CliRunner().invoke(app, [str(a) for a in [*base, *args]])
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        assert res.exit_code == 0, res.output
        return got[-1]

    return run


def test_every_field_is_an_option_with_its_help():
    params = {p.name: p for p in get_command(app).commands["train-prm"].params}  # type: ignore[attr-defined]
    assert "settings" not in params  # the dict the options fill is not an option itself
    for f in FIELDS:
        assert f.name in params, f"PRMTrainConfig.{f.name} is not a train-prm option"
        flag = "--" + f.name.replace("_", "-")
        assert flag in params[f.name].opts
        assert params[f.name].help == setting_help(f) and len(setting_help(f)) > 10
    assert "--head" in params["head_activation"].opts  # the short name docs/prm.md uses


def test_every_flag_given_lands_in_the_trainers_config(received):
    tiny = PRMTrainConfig.preset("tiny")  # the auto preset of the small init
    args, expected = [], {}
    for f in FIELDS:
        flag = "--" + f.name.replace("_", "-")
        value = getattr(tiny, f.name)
        if isinstance(value, bool):
            new = not value
            args.append(flag if new else "--no-" + flag[2:])
        else:
            if isinstance(value, str):
                assert f.name in STR_VALUES, f"add a valid non-default value for the new field {f.name} to STR_VALUES"
                new = STR_VALUES[f.name]
            else:
                new = type(value)(3 if isinstance(value, int) else 0.5)
            args += [flag, str(new)]
        assert new != value, f.name  # every field changes, so a dropped flag shows
        expected[f.name] = new
    assert received(*args) == PRMTrainConfig(**expected)


def test_preset_fills_what_is_not_given(received, tmp_path):
    assert received() == PRMTrainConfig.preset("tiny")  # auto: tiny below 50M parameters
    assert received("--lr", "0.01") == PRMTrainConfig.preset("tiny", lr=0.01)
    assert received("--no-bf16", "--head", "sigmoid") == PRMTrainConfig.preset(
        "tiny", bf16=False, head_activation="sigmoid"
    )
    assert received("--preset", "paper", "--epochs", "1") == PRMTrainConfig.preset("paper", epochs=1)
    big = small_init(tmp_path / "big", hidden=2048, layers=24)  # ~1.2B parameters by the config's count
    assert received(init=big) == PRMTrainConfig.preset("paper")
    assert received("--bf16", init=big) == PRMTrainConfig.preset("paper", bf16=True)


def test_a_field_without_help_is_refused():
    @dataclasses.dataclass
    class Knobs:
        a: int = setting(1, "Documented.")
        b: int = 2

    def command(settings: dict | None = None) -> None: ...

    with pytest.raises(TypeError, match="Knobs.b has no help"):
        config_options(Knobs, into="settings")(command)
    app2 = typer.Typer()

    @dataclasses.dataclass
    class Ok:
        a: int = setting(1, "Documented.")

    seen = []
    app2.command()(config_options(Ok, into="settings")(lambda settings=None: seen.append(settings)))
    assert CliRunner().invoke(app2, ["--a", "5"]).exit_code == 0
    assert CliRunner().invoke(app2, []).exit_code == 0
    assert seen == [{"a": 5}, {}]
