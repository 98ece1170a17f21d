"""`sft` and `train-prm` under a real `accelerate launch` with 2 CPU processes (gloo): the same losses and
weights as the single-process run at the same global batch, and resume across the two."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agentprm.policy.sft import SFTConfig, train_sft
from agentprm.policy.tiny import TinyPolicyConfig
from agentprm.prm.train import PRMTrainConfig, train_prm
from agentprm.testing.policies import scripted_demos
from agentprm.trajectory import write_trajectories
from tests.prm_helpers import scripted_dataset, tiny_backbone_dir

pytestmark = pytest.mark.skipif(
    shutil.which("accelerate") is None and not Path(sys.executable).with_name("accelerate").exists(),
    reason="accelerate's launcher is not installed",
)
ROOT = Path(__file__).resolve().parents[1]
TINY = TinyPolicyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=128)  # as the CLI builds it
SFT_ARGS = (
    "--max-steps",
    "4",
    "--epochs",
    "100",
    "--batch-size",
    "5",
    "--lr",
    "3e-3",
    "--hidden",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--checkpoint-every",
    "2",
    "--device",
    "cpu",
)


def _launch(*args: str) -> subprocess.CompletedProcess:
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "OMP_NUM_THREADS": "1",
        "AGENTPRM_PROGRESS_SECONDS": "0",
        "MASTER_ADDR": "127.0.0.1",
    }
    # `--multi_gpu` is accelerate's multi-process launcher (torch.distributed.run); `--cpu` would run one
    # process (accelerate's multi-CPU path needs mpirun). On a machine without GPUs, or with the command's
    # `--device cpu`, each process trains on CPU with gloo.
    cmd = [
        launcher,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(port),
        "-m",
        "agentprm",
        *args,
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), (k, (a[k] - b[k]).abs().max())


def test_sft_under_accelerate_matches_single_process_and_resumes_across(tmp_path):
    torch.set_num_threads(1)
    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos(10))
    # batch 5 over 2 ranks: ranks get 3 and 2 rows (uneven shards, different token counts)
    cfg = SFTConfig(max_steps=4, epochs=100, batch_size=5, lr=3e-3, checkpoint_every=2, device="cpu", tiny=TINY)
    losses: list[float] = []
    single = train_sft(demos, "tiny", tmp_path / "single", cfg, on_step=lambda s, t, loss: losses.append(loss))

    # Interrupted single-process run (checkpoint at step 2), finished by 2 processes under accelerate.
    def stop_at_3(step, total, loss):
        if step == 3:
            raise KeyboardInterrupt  # Ctrl-C after step 3: a checkpoint at the last finished step

    with pytest.raises(KeyboardInterrupt):
        train_sft(demos, "tiny", tmp_path / "ddp", cfg, on_step=stop_at_3)
    assert json.loads((tmp_path / "ddp" / "checkpoint" / "trainer_state.json").read_text())["step"] == 3
    r = _launch("sft", "--demos", str(demos), "--out", str(tmp_path / "ddp"), *SFT_ARGS)
    assert "resumed at step 3" in r.stdout
    _assert_close(_weights(single.out_dir), _weights(tmp_path / "ddp"))

    # A fresh run under accelerate: per-step losses equal the single-process ones.
    fresh = _launch("sft", "--demos", str(demos), "--out", str(tmp_path / "fresh"), *SFT_ARGS)
    printed = [
        float(line.split("loss ")[1].split(",")[0]) for line in fresh.stdout.splitlines() if line.startswith("sft: ")
    ]
    assert printed == pytest.approx(losses, abs=1.5e-3)  # printed to 3 decimals
    meta = json.loads((tmp_path / "fresh" / "agentprm_policy.json").read_text())
    assert meta["final_loss"] == pytest.approx(single.final_loss, rel=1e-4)
    _assert_close(_weights(single.out_dir), _weights(tmp_path / "fresh"))


def test_train_prm_under_accelerate_matches_single_process(tmp_path):
    torch.set_num_threads(1)
    init = tiny_backbone_dir(tmp_path / "init", hidden=32, layers=1)
    trajs = scripted_dataset(10, seed=1)
    traj_file = tmp_path / "traj.jsonl"
    write_trajectories(traj_file, trajs)
    cfg = PRMTrainConfig.preset("tiny", epochs=1, batch_size=5, bf16=False, device="cpu")
    single = train_prm(trajs, init, tmp_path / "single", cfg)
    _launch(
        "train-prm",
        "--trajectories",
        str(traj_file),
        "--init",
        str(init),
        "--out",
        str(tmp_path / "ddp"),
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--batch-size",
        "5",
        "--device",
        "cpu",
        "--no-bf16",
    )
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (tmp_path / "single" / "train_log.jsonl").read_text().splitlines()]
    assert len(rows) == len(ref) == single.steps == 2
    for a, b in zip(rows, ref):
        assert a["l_q"] == pytest.approx(b["l_q"], rel=1e-4, abs=1e-7)
        assert a["l_a"] == pytest.approx(b["l_a"], rel=1e-4, abs=1e-7)
    _assert_close(_weights(tmp_path / "single"), _weights(tmp_path / "ddp"))
