"""`PRMTrainConfig`: every knob of PRM training, its default and its help, in one place.

Kept free of torch so that the CLI can derive `agentprm train-prm`'s options from it at start-up
(`agentprm.cli.common.config_options`); the pipeline nests it as `PipelineConfig.prm`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from agentprm.typed_config import setting

OBJECTIVES = ("agentprm", "pvm", "orm", "mc")
PRESETS = ("tiny", "paper")
# How L_Q and L_A average over a batch (agentprm.prm.losses implements both).
REDUCTIONS = ("step", "trajectory")


@dataclass
class PRMTrainConfig:
    """Every knob of PRM training. Defaults are the paper's where it gives them (paper.md §9 where not)."""

    objective: str = setting(
        "agentprm", "agentprm (Algorithm 1: L_Q + β·L_A on TD-GAE targets) | pvm | orm | mc (needs --labels)."
    )
    # optimisation (paper: lr 1e-6, <= 5 epochs; optimiser, batch, schedule not given: AdamW, constant)
    lr: float = setting(1e-6, "AdamW learning rate (paper: 1e-6).")
    epochs: int = setting(5, "Epochs over the trajectories (paper: at most 5).")
    batch_size: int = setting(
        16, "Trajectories per optimiser step (the global batch under `accelerate launch`; not given in the paper)."
    )
    weight_decay: float = setting(0.0, "AdamW weight decay (not given in the paper).")
    grad_clip: float = setting(1.0, "Clip the gradient norm to this (0: no clipping; not given in the paper).")
    warmup_steps: int = setting(0, "Linear learning-rate warm-up over this many steps, then constant.")
    # labels (paper.md §9 items 1, 2, 6)
    gamma: float = setting(1.0, "TD discount γ (not given in the paper; Eq 7-8 need 1).")
    lam: float = setting(0.95, "GAE λ (paper: 0.95).")
    bootstrap: str = setting("literal", "TD-GAE form: literal (paper Eq 12-14) | next (SARSA(λ) next-step bootstrap).")
    binary_outcome: bool = setting(False, "Use 0/1 success as the outcome r instead of the raw env reward.")
    # loss (paper.md §9 item 3)
    beta: float = setting(1.0, "Weight β of L_A (paper: 1).")
    half_advantage: bool = setting(True, "½ on L_A (Algorithm 1) or not (Eq 9).")
    detach_targets: bool = setting(True, "Stop-gradient on the TD targets (not stated in the paper; standard).")
    reduction: str = setting(
        "step", "step: mean over all steps of the batch (Eq 4) | trajectory: mean per trajectory first."
    )
    mc_advantage_loss: bool = setting(False, "mc objective: add β·L_A (the paper does not say; §9 item 12).")
    # model (paper.md §9 item 4)
    head_activation: str = setting("none", "Value head activation: none (regression) | sigmoid.", flags=("--head",))
    max_length: int = setting(0, "Token cap (0: the backbone's limit); longer trajectories are skipped in training.")
    # bookkeeping
    seed: int = setting(0, "Shuffle seed.")
    checkpoint_every: int = setting(200, "Optimiser steps between checkpoints (one is also written each epoch).")
    device: str = setting("auto", "auto | cpu | cuda.")
    bf16: bool = setting(False, "bf16 autocast of the forward (fp32 weights and loss); ~1.5x on CPUs with AMX.")
    gradient_checkpointing: bool = setting(
        False,
        "Recompute the backbone's activations in backward (HF gradient checkpointing): a pretrained backbone's "
        "memory falls from every layer's activations to one layer's; same values, slower.",
    )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PRMTrainConfig:
        """`paper`: the paper's lr 1e-6, 5 epochs, for pretrained LLM backbones.

        `tiny`: the from-scratch default backbone (about 1M parameters) on 2 CPU cores. lr 1e-6 does not
        move a freshly initialised head in any affordable number of steps, so it uses AdamW lr 3e-4,
        batch 8, 2 epochs and bf16 autocast so that three PRMs fit the pipeline's minutes (the measurements
        behind these: docs/prm.md).
        """
        if name == "paper":
            base = cls()
        elif name == "tiny":
            base = cls(lr=3e-4, epochs=2, batch_size=8, warmup_steps=10, bf16=True)
        else:
            raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}")
        return replace(base, **overrides)

    def validate(self) -> None:
        from agentprm.labels.td_gae import BOOTSTRAPS  # numpy: kept out of the CLI's start-up

        checks = [
            (self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}"),
            (self.bootstrap in BOOTSTRAPS, f"bootstrap must be one of {BOOTSTRAPS}"),
            (self.reduction in REDUCTIONS, f"reduction must be one of {REDUCTIONS}"),
            (self.lr > 0 and self.epochs >= 1 and self.batch_size >= 1, "lr > 0, epochs >= 1, batch_size >= 1"),
            (0.0 <= self.lam <= 1.0 and 0.0 <= self.gamma <= 1.0, "lam and gamma must lie in [0, 1]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


# How a run trains, not what it trains (the same weights up to float rounding): a resume may change these
# (e.g. turn on recompute after running out of memory), and the pipeline's stage key leaves them out.
HOW_FIELDS = ("device", "checkpoint_every", "gradient_checkpointing")
