"""Training curves: the one logger SFT, PRM training and RL write their scalars through.

`report_to` follows Hugging Face's convention: "tensorboard" (the default: event files in the run
folder, `<out>/tb`, which `tensorboard --logdir runs/NAME` and `agentprm view` read), "wandb" (when the
wandb package is installed; its project comes from WANDB_PROJECT, default "agentprm"), "none", or a
comma-separated list such as "tensorboard,wandb".
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentprm.errors import UserError

REPORT_TO = ("tensorboard", "wandb", "none")
TB_DIR = "tb"  # under a training's output dir


def parse_report_to(value: str | Sequence[str] | None) -> list[str]:
    """The backends named by `value` (a name, a comma list or a list); [] for "none"."""
    if value is None:
        return []
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    bad = [n for n in names if n not in REPORT_TO]
    if bad:
        raise UserError(f"unknown --report-to {','.join(bad)}; choose from: {', '.join(REPORT_TO)}")
    return [n for n in dict.fromkeys(names) if n != "none"]


def check_report_to(value: str | Sequence[str] | None) -> list[str]:
    """`parse_report_to`, and fail early (one line) when a named backend is not installed."""
    names = parse_report_to(value)
    if "wandb" in names:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UserError(
                "--report-to wandb needs the wandb package: pip install wandb (or use --report-to tensorboard)"
            ) from None
    return names


class Tracker:
    """Scalars by step to every backend asked for. A context manager; `log` is cheap enough per step.

    `throughput(tokens)` turns a token count per step into tokens/s from the wall clock between calls.
    """

    def __init__(
        self,
        log_dir: str | Path | None,
        report_to: str | Sequence[str] | None = "tensorboard",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
    ):
        self.backends = check_report_to(report_to)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._tb = None
        self._wandb = None
        self._last = time.perf_counter()
        if "tensorboard" in self.backends:
            if self.log_dir is None:
                raise ValueError("tensorboard logging needs a log_dir")
            from torch.utils.tensorboard import SummaryWriter

            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._tb = SummaryWriter(str(self.log_dir))
        if "wandb" in self.backends:
            import os

            import wandb

            self._wandb = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "agentprm"),
                name=run_name,
                dir=str(self.log_dir) if self.log_dir else None,
                config=dict(config or {}),
                reinit=True,
            )

    @property
    def active(self) -> bool:
        return bool(self._tb or self._wandb)

    def throughput(self, tokens: int) -> float:
        now = time.perf_counter()
        rate = tokens / max(now - self._last, 1e-9)
        self._last = now
        return rate

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, float(v), step)
        if self._wandb is not None:
            self._wandb.log({k: float(v) for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag's (step, value) points in a TensorBoard log dir (all its event files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags().get("scalars", [])}


def event_dirs(root: str | Path) -> list[Path]:
    """The folders under `root` that hold TensorBoard event files."""
    return sorted({p.parent for p in Path(root).rglob("events.out.tfevents.*")})
