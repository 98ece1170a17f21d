"""Kill drills: run a CLI stage in a child process, SIGKILL it at a seeded random moment, rerun it to the
end, and compare what it left with an uninterrupted run (issue 21 item 1).

A drill passes when the resumed output equals the uninterrupted one: JSONL records with the same ids and
contents (volatile fields such as wall times aside), no duplicate id, no torn or garbage line; PRM
directories that load, with the same weights (training resumes exactly from its checkpoint).

Children fork from a forkserver that imported torch, transformers and the CLI once, so a drill costs the
stage's own work, not an interpreter start. `tests/test_kill_resume.py` runs one kill per stage;
`benchmarks/kill_drills.py --drills N` runs more and prints the table in docs/reliability.md.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What a child needs, imported once in the forkserver (forked children then start in milliseconds).
PRELOAD = [
    "agentprm.testing.kill_drills",
    "torch",
    "transformers",
    "agentprm.cli",
    "agentprm.policy.hf",
    "agentprm.prm.train",
    "agentprm.prm.model",
    "agentprm.search.runner",
    "agentprm.pipeline",
]

# Fields that legitimately differ between two runs of the same work.
VOLATILE = frozenset(
    {"compute", "wall_s", "seconds", "elapsed_s", "time", "timestamp", "started", "finished", "command"}
)
_EXPERT_SUFFIX = re.compile(r"-[0-9a-f]{8}$")  # experts add a random suffix to keep ids unique across runs


def _child(argv: list[str], log: str) -> None:
    """A stage as the user runs it: `agentprm ARGV`, output to `log`."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from agentprm.envs import REGISTRY, EnvSpec, register

    if "scripted" not in REGISTRY:
        register(EnvSpec(name="scripted", factory="agentprm.testing.fakes:ScriptedEnv", description="test env"))
    from agentprm.cli import main

    sys.argv = ["agentprm", *argv]
    main()


_CTX: Any = None


def context() -> Any:
    global _CTX
    if _CTX is None:
        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(PRELOAD)
    return _CTX


def _noop() -> None:
    pass


def warm() -> None:
    """Start the forkserver (it imports PRELOAD) before anything is timed."""
    p = context().Process(target=_noop)
    p.start()
    p.join()


def _appeared(path: Path | None) -> bool:
    if path is None:
        return True
    return path.is_dir() or (path.is_file() and path.stat().st_size > 0)


def run_stage(
    argv: list[str], log: Path, *, watch: Path | None = None, kill_after_s: float | None = None, timeout_s: float = 900
) -> tuple[int | None, float, bool, float]:
    """Run `agentprm ARGV` in a child. With `kill_after_s`, SIGKILL it that long after `watch` (the stage's
    output) first appears, if it is still running: the kill lands while the stage writes its output.

    Returns (exit code, seconds, killed, seconds until `watch` appeared)."""
    p = context().Process(target=_child, args=(argv, str(log)))
    t0 = time.monotonic()
    p.start()
    seen_at: float | None = None
    while p.is_alive():
        now = time.monotonic()
        if seen_at is None and _appeared(watch):
            seen_at = now
        if now - t0 > timeout_s:
            p.kill()
            p.join()
            raise TimeoutError(f"agentprm {' '.join(argv)} ran past {timeout_s} s")
        if kill_after_s is not None and seen_at is not None and now - seen_at >= kill_after_s:
            os.kill(p.pid, signal.SIGKILL)
            p.join()
            return p.exitcode, now - t0, True, seen_at - t0
        p.join(timeout=0.005)
    end = time.monotonic()
    return p.exitcode, end - t0, False, (seen_at if seen_at is not None else end) - t0


# -- comparing outputs --------------------------------------------------------------------------------------


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _key(rec: dict[str, Any]) -> str:
    rid = str(rec.get("id", rec.get("trajectory_id", "")))
    return _EXPERT_SUFFIX.sub("", rid)


def jsonl_records(path: Path, base: Path | None = None) -> dict[str, Any]:
    """Every line parsed (a torn or garbage line fails), keyed by id; duplicates fail. Paths under `base`
    (the run's own folder, recorded e.g. as the policy's path) read as `<run>`."""
    out: dict[str, Any] = {}
    text = path.read_text(encoding="utf-8")
    if base is not None:
        text = text.replace(str(base), "<run>")
    for i, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise AssertionError(f"{path}: line {i + 1} is not JSON (torn or garbage): {line[:80]!r}") from e
        k = _key(rec)
        if k in out:
            raise AssertionError(f"{path}: id {k!r} written twice")
        rec = _strip(rec)
        if "id" in rec:
            rec["id"] = k
        out[k] = rec
    return out


def prm_weights(path: Path) -> dict[str, Any]:
    """The PRM in `path` loaded as the library loads it (a cut file fails), as tensors by name."""
    from agentprm.prm.model import ValueHeadPRM

    model, _, _ = ValueHeadPRM.load(path)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def compare(
    kind: str, want: Path, got: Path, want_base: Path | None = None, got_base: Path | None = None
) -> str | None:
    """None when `got` matches `want`, else what differs (one line)."""
    if not got.exists():
        return f"{got} missing"
    if kind == "jsonl":
        a, b = jsonl_records(want, want_base), jsonl_records(got, got_base)
        if a.keys() != b.keys():
            return f"{got.name}: ids differ: {sorted(a.keys() ^ b.keys())[:5]}"
        diff = [k for k in a if a[k] != b[k]]
        return f"{got.name}: contents differ for {diff[:5]}" if diff else None
    if kind == "prm":
        import torch

        a, b = prm_weights(want), prm_weights(got)
        bad = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
        return f"{got.name}: weights differ: {bad[:3]}" if bad else None
    if kind == "policy":
        import torch

        a, b = policy_weights(want), policy_weights(got)
        bad = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
        return f"{got.name}: weights differ: {bad[:3]}" if bad else None
    if kind == "exists":
        return None
    raise ValueError(kind)


def policy_weights(path: Path) -> dict[str, Any]:
    """The SFT policy in `path` as saved (a cut safetensors file fails to load)."""
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


# -- the stages ----------------------------------------------------------------------------------------------


@dataclass
class Drill:
    """One stage: its CLI arguments given (inputs dir, work dir), and the outputs compared (kind, path)."""

    name: str
    argv: Callable[[Path, Path], list[str]]
    outputs: list[tuple[str, str]]
    watch: str  # the output whose appearance starts the kill window (a JSONL file, a checkpoint folder)
    produces: tuple[str, ...] = ()  # outputs later drills read, copied into the inputs dir under the same name


def pipeline_config(root: Path) -> Path:
    """configs/smoke.yaml cut to one PRM and best-of-2 (its beam searches take minutes on shared CPUs)."""
    import yaml

    src = Path(__file__).resolve().parents[3] / "configs" / "smoke.yaml"
    cfg = yaml.safe_load(src.read_text()) if src.exists() else {}
    cfg.update(
        name="drill",
        demos=12,
        objectives=["agentprm"],
        ablation_beta0=False,
        beams=[],
        random_baseline=False,
        collect_tasks=2,
        n_per_task=2,
        eval_tasks=2,
        bon=2,
    )
    path = root / "drill.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def drills() -> list[Drill]:
    scripted = ["--env", "scripted", "--max-new-tokens", "8"]
    return [
        Drill(
            "demos",
            lambda i, w: ["demos", "--env", "textcraft", "--n", "8", "--out", str(w / "demos.jsonl")],
            [("jsonl", "demos.jsonl")],
            "demos.jsonl",
        ),
        Drill(
            "sft",
            lambda i, w: [
                "sft",
                "--demos",
                str(i / "demos.jsonl"),
                "--base",
                "tiny",
                "--out",
                str(w / "policy"),
                "--max-steps",
                "40",
                "--batch-size",
                "4",
                "--checkpoint-every",
                "4",
                "--layers",
                "1",
                "--hidden",
                "16",
                "--heads",
                "2",
                "--threads",
                "1",
            ],
            [("policy", "policy")],
            "policy/checkpoint",
        ),
        Drill(
            "collect",
            lambda i, w: [
                "collect",
                "--policy",
                str(i / "policy"),
                *scripted,
                "--n-tasks",
                "6",
                "--n-per-task",
                "3",
                "--batch-size",
                "4",
                "--out",
                str(w / "traj.jsonl"),
            ],
            [("jsonl", "traj.jsonl")],
            "traj.jsonl",
            ("traj.jsonl",),
        ),
        Drill(
            "label-td-gae",
            lambda i, w: [
                "label",
                "--method",
                "td-gae",
                "--trajectories",
                str(i / "traj.jsonl"),
                "--out",
                str(w / "td.jsonl"),
            ],
            [("jsonl", "td.jsonl")],
            "td.jsonl",
        ),
        Drill(
            "label-mc",
            lambda i, w: [
                "label",
                "--method",
                "mc",
                "--trajectories",
                str(i / "traj.jsonl"),
                "--env",
                "scripted",
                "--policy",
                str(i / "policy"),
                "--n-mc",
                "2",
                "--max-new-tokens",
                "8",
                "--out",
                str(w / "mc.jsonl"),
            ],
            [("jsonl", "mc.jsonl")],
            "mc.jsonl",
        ),
        Drill(
            "train-prm",
            lambda i, w: [
                "train-prm",
                "--objective",
                "agentprm",
                "--trajectories",
                str(i / "traj.jsonl"),
                "--init",
                str(i / "policy"),
                "--epochs",
                "3",
                "--batch-size",
                "2",
                "--device",
                "cpu",
                "--out",
                str(w / "prm"),
            ],
            [("prm", "prm")],
            "prm/checkpoint",
            ("prm",),
        ),
        Drill(
            "search-bon",
            lambda i, w: [
                "search",
                "--policy",
                str(i / "policy"),
                "--rm",
                str(i / "prm"),
                "--strategy",
                "bon",
                "--budget",
                "4",
                *scripted,
                "--split",
                "test",
                "--n",
                "4",
                "--chunk",
                "1",
                "--out",
                str(w / "bon.jsonl"),
            ],
            [("jsonl", "bon.jsonl")],
            "bon.jsonl",
        ),
        Drill(
            "search-beam",
            lambda i, w: [
                "search",
                "--policy",
                str(i / "policy"),
                "--rm",
                str(i / "prm"),
                "--strategy",
                "beam",
                "--budget",
                "2x2",
                *scripted,
                "--split",
                "test",
                "--n",
                "4",
                "--chunk",
                "1",
                "--out",
                str(w / "beam.jsonl"),
            ],
            [("jsonl", "beam.jsonl")],
            "beam.jsonl",
        ),
        Drill(
            "rl",
            lambda i, w: [
                "rl",
                "--policy",
                str(i / "policy"),
                "--env",
                "scripted",
                "--out",
                str(w / "rl"),
                "--reward",
                "outcome",
                "--iterations",
                "4",
                "--tasks-per-iter",
                "2",
                "--episodes-per-task",
                "2",
                "--max-new-tokens",
                "4",
                "--eval-every",
                "0",
                "--checkpoint-every",
                "1",
                "--threads",
                "1",
            ],
            [("policy", "rl/policy")],
            "rl/checkpoint",
        ),
        Drill(
            "pipeline",
            lambda i, w: ["pipeline", str(pipeline_config(w.parent)), "--runs", str(w)],
            [
                ("jsonl", "drill/trajectories.jsonl"),
                ("jsonl", "drill/labels/td-gae.jsonl"),
                ("prm", "drill/prm/agentprm"),
                ("jsonl", "drill/eval/textcraft/greedy.jsonl"),
                ("jsonl", "drill/eval/textcraft/agentprm/bon_2.jsonl"),
                ("exists", "drill/report.md"),
            ],
            "drill/demos.jsonl",
        ),
    ]


@dataclass
class DrillResult:
    stage: str
    kills: int = 0  # children killed mid-run
    finished_first: int = 0  # children that ended before their kill time
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    reference_s: float = 0.0
    left_at_kill: list[str] = field(default_factory=list)  # what each kill left behind, before the rerun


def _partial(drill: Drill, work: Path) -> str:
    """What a killed run left: records per JSONL output (a torn last line counted apart), or checkpoints."""
    parts = []
    for kind, rel in drill.outputs:
        path = work / rel
        if kind == "jsonl":
            if path.exists():
                lines = path.read_bytes().split(b"\n")
                torn = bool(lines[-1])  # no final newline: a record cut mid-write
                parts.append(f"{path.name} {len(lines) - 1} lines" + (" + torn" if torn else ""))
            else:
                parts.append(f"{path.name} absent")
        elif kind in ("prm", "policy"):
            ckpt = path / "checkpoint"
            parts.append(
                "checkpoint"
                if ckpt.exists()
                else (
                    "done"
                    if (path / "value_head.safetensors").exists() or (path / "model.safetensors").exists()
                    else "no checkpoint"
                )
            )
    return ", ".join(parts)


def prepare_inputs(root: Path) -> Path:
    """The inputs later stages read: a tiny trained policy for the scripted env."""
    from agentprm.testing.policies import tiny_policy_dir

    inputs = root / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    if not (inputs / "policy" / "config.json").exists():
        tiny_policy_dir(inputs / "policy", train_steps=60)
    if not (inputs / "demos.jsonl").exists():
        from agentprm.testing.policies import scripted_demos
        from agentprm.trajectory import write_trajectories

        write_trajectories(inputs / "demos.jsonl", scripted_demos(24))
    return inputs


def run_drills(
    root: Path, kills_per_stage: int, seed: int = 0, only: list[str] | None = None, log: Callable[[str], None] = print
) -> list[DrillResult]:
    """Per stage: one uninterrupted reference run, then `kills_per_stage` kill + rerun drills compared to it."""
    rng = random.Random(seed)
    inputs = prepare_inputs(root)
    warm()
    results = []
    for drill in drills():
        if only and drill.name not in only:
            continue
        res = DrillResult(drill.name)
        ref = root / drill.name / "reference"
        ref.mkdir(parents=True, exist_ok=True)
        code, res.reference_s, _, first_out = run_stage(
            drill.argv(inputs, ref), root / drill.name / "reference.log", watch=ref / drill.watch
        )
        if code != 0:
            raise RuntimeError(
                f"{drill.name}: the uninterrupted run failed (exit {code}); see {root / drill.name / 'reference.log'}"
            )
        for rel in drill.produces:
            dest = inputs / rel
            if dest.is_dir():
                shutil.rmtree(dest)
            (shutil.copytree if (ref / rel).is_dir() else shutil.copy)(ref / rel, dest)
        for k in range(kills_per_stage):
            work = root / drill.name / f"kill{k}"
            work.mkdir(parents=True, exist_ok=True)
            logf = root / drill.name / f"kill{k}.log"
            killed, tries = False, 0
            while not killed and tries < 3:  # a child that finished before its kill time is drawn again
                tries += 1
                # a random moment between the output's first appearance and the end (as the reference run took)
                at = rng.uniform(0.0, 0.95) * max(res.reference_s - first_out, 0.01)
                code, _, killed, _ = run_stage(
                    drill.argv(inputs, work), logf, watch=work / drill.watch, kill_after_s=at
                )
            res.kills += killed
            res.finished_first += not killed
            res.left_at_kill.append(_partial(drill, work))
            code, _, _, _ = run_stage(drill.argv(inputs, work), logf)
            problems = [f"rerun exit {code}"] if code != 0 else []
            problems += [p for kind, rel in drill.outputs if (p := compare(kind, ref / rel, work / rel, ref, work))]
            if problems:
                res.failures.append(f"kill {at:.2f}s after {drill.watch} appeared: " + "; ".join(problems))
            else:
                res.passed += 1
        log(
            f"{drill.name}: reference {res.reference_s:.1f}s, {res.kills} killed, {res.finished_first} finished first, "
            f"{res.passed}/{kills_per_stage} resumed identical; left at kill: {res.left_at_kill}"
            + (f"; FAILED: {res.failures}" if res.failures else "")
        )
        results.append(res)
    return results
