"""Ctrl-C (SIGINT) stops long commands within seconds, says how to resume, and leaves resumable state;
progress lines are printed when stdout is not a terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentprm.testing.policies import scripted_demos, tiny_policy_dir
from agentprm.trajectory import read_trajectories, write_trajectories

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "AGENTPRM_PROGRESS_SECONDS": "0"}


def _interrupt_after(cmd: list[str], marker: str, timeout: float = 120) -> tuple[int, str, str, float]:
    """Run `cmd`, send SIGINT once a stdout line starts with `marker`; (exit code, stdout, stderr, seconds
    from the signal to the exit)."""
    # A shell's background job (`cmd &`) starts with SIGINT ignored and children inherit that, so Python
    # would not raise KeyboardInterrupt: give the command the default disposition a terminal's Ctrl-C meets.
    p = subprocess.Popen(
        [sys.executable, "-m", "agentprm", *cmd],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    deadline = time.monotonic() + timeout
    assert p.stdout is not None
    for line in p.stdout:
        lines.append(line)
        if line.startswith(marker) or time.monotonic() > deadline:
            break
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    return p.returncode, "".join(lines) + out, err, time.monotonic() - sent


def test_ctrl_c_during_sft_checkpoints_and_a_rerun_resumes(tmp_path):
    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos(8))
    args = [
        "sft",
        "--demos",
        str(demos),
        "--out",
        str(tmp_path / "pol"),
        "--max-steps",
        "100000",
        "--epochs",
        "100000",
        "--batch-size",
        "2",
        "--hidden",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--checkpoint-every",
        "100000",
    ]
    code, out, err, waited = _interrupt_after(args, "sft: 2/")
    assert code == 130, err[-2000:]
    assert "interrupted" in err and "rerun the same command to resume" in err
    assert waited < 20
    assert "sft: 1/100000" in out  # progress lines although stdout is a pipe
    step = json.loads((tmp_path / "pol" / "checkpoint" / "trainer_state.json").read_text())["step"]
    assert step >= 2
    code, out, err, _ = _interrupt_after(args, "sft: ")
    assert code == 130 and f"sft: {step + 1}/100000" in out  # resumed after the saved step, not from 1


def test_ctrl_c_during_eval_stops_and_keeps_finished_episodes(tmp_path):
    pol = tiny_policy_dir(tmp_path / "policy")  # untrained: long garbage turns until max rounds
    out = tmp_path / "eval.jsonl"
    args = [
        "eval",
        "--policy",
        str(pol),
        "--env",
        "textcraft",
        "--n-tasks",
        "40",
        "--batch-size",
        "1",
        "--max-new-tokens",
        "16",
        "--out",
        str(out),
    ]
    code, stdout, err, waited = _interrupt_after(args, "eval textcraft/test: 1/40")
    assert code == 130, err[-2000:]
    assert waited < 20 and "rerun the same command to resume" in err
    done = read_trajectories(out)
    assert 1 <= len(done) < 40 and len({t.task_id for t in done}) == len(done)
