"""A full disk (issue 21 item 3), for real: outputs go to a small tmpfs filled with a ballast file until only
N bytes are free. Each writer (collect's JSONL, the PRM and SFT checkpoints, the pipeline's stage records)
must stop with one `DiskFullError` naming the path, leave nothing torn that a rerun would trust, and, once
the ballast is deleted, the rerun must finish to exactly what an uninterrupted run wrote.

Needs `mount -t tmpfs` (root / CAP_SYS_ADMIN); skipped with the reason where that is not permitted.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from agentprm.disk import DiskFullError
from agentprm.testing.kill_drills import compare, jsonl_records

MIB = 1 << 20


@pytest.fixture
def disk(tmp_path):
    """A 4 MiB tmpfs, unmounted after the test."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def leave_free(disk: Path, nbytes: int) -> Path:
    """Fill `disk` with a ballast file until about `nbytes` are free; returns the ballast (delete it to free)."""
    ballast = disk / "ballast"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(ballast, "ab") as fh:
        fh.write(b"\0" * max(0, free - nbytes))
    return ballast


def _no_torn_line(path: Path) -> dict:
    """Every line of `path` parses and the file ends at a record boundary (nothing half-written)."""
    data = path.read_bytes() if path.exists() else b""
    assert not data or data.endswith(b"\n"), f"{path} ends mid-record"
    return jsonl_records(path) if data else {}


# -- collect's JSONL writer -------------------------------------------------------------------------------------


def _collect(out: Path):
    from agentprm.rollout import RolloutConfig
    from agentprm.rollout.jobs import rollout_tasks
    from agentprm.testing import ScriptedPolicy
    from agentprm.testing.fakes import ScriptedEnv

    env = ScriptedEnv(n_train=8)
    return rollout_tasks(
        ScriptedPolicy(lambda conv, rng: rng.choice("abcxyz")),
        lambda: ScriptedEnv(n_train=8),
        env.task_ids("train")[:6],
        out,
        n_per_task=3,
        cfg=RolloutConfig(temperature=1.0, max_new_tokens=8, max_rounds=6, batch_size=4),
        seed=0,
    )


def test_collect_on_a_full_disk_stops_cleanly_and_resumes(disk, tmp_path):
    ref = tmp_path / "ref.jsonl"
    _collect(ref)
    size = ref.stat().st_size
    kept = []
    for frac in (0.0, 0.3, 0.7):  # free space for none, about a third, two thirds of the records
        out = disk / f"traj{frac}.jsonl"
        ballast = leave_free(disk, int(frac * size))
        with pytest.raises(DiskFullError, match="no space left on device writing .*traj") as e:
            _collect(out)
        assert str(out) in str(e.value)
        partial = _no_torn_line(out)  # cut back to the last whole record
        kept.append(len(partial))
        want = jsonl_records(ref)
        assert all(partial[k] == want[k] for k in partial)
        ballast.unlink()
        _collect(out)  # space freed: the rerun resumes
        assert compare("jsonl", ref, out) is None
        out.unlink()
    assert kept[0] == 0 and kept[-1] > kept[1] > 0, kept  # the disk filled at different records


def test_cli_full_disk_is_one_line_exit_2_and_a_rerun_resumes(disk, tmp_path, capsys):
    import sys

    from agentprm.cli import main

    def demos(out: Path) -> int:
        argv = sys.argv
        sys.argv = ["agentprm", "demos", "--env", "textcraft", "--n", "6", "--out", str(out)]
        try:
            main()
        except SystemExit as e:
            return int(e.code or 0)
        finally:
            sys.argv = argv
        return 0

    assert demos(tmp_path / "ref.jsonl") == 0
    capsys.readouterr()
    out = disk / "demos.jsonl"
    ballast = leave_free(disk, (tmp_path / "ref.jsonl").stat().st_size // 2)
    assert demos(out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("agentprm: error: no space left on device writing ") and str(out) in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert 0 < len(_no_torn_line(out)) < 6
    ballast.unlink()
    assert demos(out) == 0
    assert compare("jsonl", tmp_path / "ref.jsonl", out) is None


# -- the PRM and SFT checkpoint writers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prm_setup(tmp_path_factory):
    from tests.prm_helpers import scripted_dataset, tiny_backbone_dir

    return tiny_backbone_dir(tmp_path_factory.mktemp("bb")), scripted_dataset(16, seed=0, ps=(0.0, 1.0))


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_train_prm_on_a_full_disk_resumes_to_the_same_weights(disk, tmp_path, prm_setup):
    import shutil

    from agentprm.prm.train import CHECKPOINT_DIR, PRMTrainConfig, is_trained, train_prm

    init, trajs = prm_setup
    cfg = PRMTrainConfig.preset("tiny", epochs=3, batch_size=8, checkpoint_every=0)  # 6 steps, a checkpoint per epoch

    def train(out: Path, on_step=None):
        return train_prm(trajs, init, out, cfg, report_to="none", on_step=on_step)

    train(tmp_path / "ref")
    train_prm(trajs, init, tmp_path / "c", cfg, report_to="none", stop_after_steps=2)
    ckpt, final = _du(tmp_path / "c" / CHECKPOINT_DIR), _du(tmp_path / "ref")
    assert final < ckpt  # a checkpoint holds the optimizer too

    def fill_before_final_save(out: Path):
        box = {}

        def on_step(step, total, lq, la):
            if step == total:  # the disk fills while the last step runs: only the final save is left
                box["ballast"] = leave_free(disk, final // 3)

        return on_step, box

    failed_at = []
    for case in ("first checkpoint", "second checkpoint", "final save"):
        out = disk / "prm"
        box: dict = {}
        on_step = None
        if case == "first checkpoint":
            box["ballast"] = leave_free(disk, ckpt // 2)
        elif case == "second checkpoint":  # the new copy is written beside the old one before the swap
            box["ballast"] = leave_free(disk, int(ckpt * 1.5))
        else:
            on_step, box = fill_before_final_save(out)
        with pytest.raises(DiskFullError, match="no space left on device") as e:
            train(out, on_step)
        failed_at.append(e.value.path.name)
        assert not is_trained(out)  # nothing marks the PRM finished
        assert not (out / (CHECKPOINT_DIR + ".tmp")).exists()  # the partial copy is removed
        box["ballast"].unlink()
        res = train(out)  # resumes from the last whole checkpoint (or starts again)
        assert is_trained(out) and res.steps == 6, case
        assert res.resumed_from_step == {"first checkpoint": 0, "second checkpoint": 2, "final save": 4}[case]
        assert compare("prm", tmp_path / "ref", out) is None, case  # bit-identical weights
        steps = [json.loads(x)["step"] for x in (out / "train_log.jsonl").read_text().splitlines()]
        assert steps == list(range(1, 7)), case
        shutil.rmtree(out)
    assert failed_at == ["checkpoint.tmp", "checkpoint.tmp", "prm"], failed_at


def test_a_torn_prm_config_is_not_a_finished_prm(tmp_path):
    from agentprm.prm.train import is_trained

    (tmp_path / "prm_config.json").write_text('{"train": {"complete": tr')
    assert not is_trained(tmp_path)


def test_sft_checkpoint_on_a_full_disk_keeps_the_previous_one(disk, tmp_path):
    from agentprm.policy.sft import CKPT_DIR, SFTConfig, is_trained, train_sft
    from agentprm.policy.tiny import TinyPolicyConfig
    from agentprm.testing.policies import scripted_demos
    from agentprm.trajectory import write_trajectories

    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos())
    tiny = TinyPolicyConfig(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, vocab_size=300)
    cfg = SFTConfig(max_steps=6, epochs=100, batch_size=8, lr=3e-3, warmup_steps=2, checkpoint_every=2, tiny=tiny)
    train_sft(demos, "tiny", tmp_path / "ref", cfg)
    size = _du(tmp_path / "ref")
    out = disk / "policy"
    ballast = leave_free(disk, int(size * 3.5))  # room for a checkpoint or two, not for everything
    with pytest.raises(DiskFullError):
        train_sft(demos, "tiny", out, cfg)
    assert not is_trained(out) and not (out / (CKPT_DIR + ".tmp")).exists()
    ballast.unlink()
    res = train_sft(demos, "tiny", out, cfg)
    assert is_trained(out) and res.steps == 6
    assert res.resumed_from == 2  # the step-4 checkpoint did not fit; the step-2 one was kept and resumed
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "ref" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # resumed exactly


# -- the pipeline's stage records ---------------------------------------------------------------------------------


def test_stage_record_on_a_full_disk_keeps_the_old_record(disk):
    from agentprm.pipeline import Provenance

    old = Provenance("collect", "k1", "h1", {"sft": "k0"}, True, "agentprm pipeline")
    path = disk / "provenance" / "x.json"
    old.write(path)
    big = Provenance("collect", "k2", "h2", {"sft": "x" * (3 * MIB)}, True, "agentprm pipeline")
    ballast = leave_free(disk, 256 * 1024)
    with pytest.raises(DiskFullError, match="x.json"):
        big.write(path)
    assert Provenance.read(path) == old and sorted(p.name for p in path.parent.iterdir()) == ["x.json"]
    ballast.unlink()
