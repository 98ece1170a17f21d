"""`PipelineConfig`: what one `agentprm pipeline` run is asked to do (YAML: configs/*.yaml), and the embedded
defaults per env. Its own module so that the stage keys (`agentprm.stage_keys`) and the report that checks
a run folder against them read it without importing the pipeline that runs the stages."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agentprm.errors import UserError
from agentprm.policy.sft import SFTConfig
from agentprm.policy.tiny import TinyPolicyConfig
from agentprm.prm.config import PRMTrainConfig
from agentprm.search.budget import Budget
from agentprm.typed_config import as_mapping, check_keys, from_mapping

# The reward models the pipeline trains besides one per objective (their PRM dirs, searches and report rows).
BETA0_RM = "agentprm-beta0"  # AgentPRM with beta = 0 (`ablation_beta0`)
MC_LA_RM = "mc-la"  # the MC PRM with L_Q + beta*L_A (`mc_advantage_ablation`)


def _default_sft() -> SFTConfig:
    # batch 8 (3 epochs, 738 steps, 255 s) beat batch 32 (5 epochs, 361 s): greedy train 14% vs 6%, test 4% vs 2%
    return SFTConfig(epochs=3.0, batch_size=8, lr=2e-3, bf16=True)


# The pipeline's PRMTrainConfig overrides per preset when the config gives no `prm:` (tiny: 1 epoch, three
# PRMs in ~2 min; 2 epochs took 100-127 s each). A pretrained base gets the paper's settings as they are.
PRM_DEFAULT_OVERRIDES: dict[str, dict[str, Any]] = {"tiny": {"epochs": 1}}


def prm_preset_for(base: str, preset: str = "auto") -> str:
    """The PRM preset: `auto` is `tiny` for the from-scratch tiny base and `paper` (lr 1e-6, 5 epochs) for a
    pretrained one."""
    if preset == "auto":
        return "tiny" if base == "tiny" else "paper"
    if preset not in ("tiny", "paper"):
        raise UserError(f"unknown prm_preset {preset!r}; choose auto, tiny or paper")
    return preset


@dataclass
class PipelineConfig:
    """The embedded default's fields (these are TextCraft's sizes; `agentprm pipeline` with no config runs
    `ENV_DEFAULTS[DEFAULT_ENV]`, BabyAI), a tiny from-scratch policy on 2 CPU cores.

    The measured figures for these sizes are in the README ("Status") and docs/policy.md.
    """

    name: str = "default"
    env: str = "textcraft"
    seed: int = 0
    threads: int = 2  # torch threads
    device: str = "cpu"
    # demos + SFT (the tiny from-scratch policy needs thousands of demos; the paper's 300 is for LLMs)
    demos: int = 2000
    # The expert's thoughts where it offers styles (textcraft: full | brief | none). "none": action-only
    # turns, the shortest to sample; `--env textcraft`'s embedded default uses "brief" (ENV_DEFAULTS).
    thought_style: str | None = "none"
    # Item-renamed copies written after every successful demo (textcraft; 0 elsewhere): see
    # envs/textcraft_augment.py and docs/policy.md for what they measured.
    demo_renamed_copies: int = 0
    base: str = "tiny"  # tiny | smollm2 | an HF model dir
    policy_dtype: str = (
        "float32"  # the SFT policy's weights when sampling (bfloat16: ~2x faster for pretrained bases on CPU)
    )
    sft: SFTConfig = field(default_factory=_default_sft)  # YAML: a mapping of SFTConfig fields
    # collect: N trajectories per training task at temperature 1.0 (paper)
    collect_tasks: int | None = 24  # None: every task of the train split
    n_per_task: int = 16
    collect_temperature: float = 1.0
    max_new_tokens: int = 48  # action-only turns are <= ~25 tokens
    # Episode cap in rounds for collect, labels and search (None: the env's own = AgentGym's evaluation
    # budget and the paper's: BabyAI and TextCraft 20). Demos keep the env's own.
    max_rounds: int | None = None
    batch_size: int = 64
    # PRMs: one per objective, initialised from the SFT policy (paper)
    objectives: list[str] = field(default_factory=lambda: ["agentprm", "pvm", "orm"])  # + "mc" (costly)
    # MC labels (objective "mc"): N_mc rollouts from every step s_{t+1} of the seed trajectories. None: one
    # seed per training task, as the paper runs it; a number: that many, spread round-robin over the tasks.
    mc_trajectories: int | None = None
    n_mc: int = 16
    # Train the MC PRM for as many optimiser steps as the TD PRMs (its epochs scaled by how many fewer
    # trajectories carry MC labels), so that claim 5 compares labels, not training lengths.
    mc_equal_steps: bool = True
    prm_preset: str = "auto"  # auto (tiny for the tiny base, paper otherwise) | tiny | paper
    # YAML: a mapping of PRMTrainConfig fields over the preset (objective, beta, seed, device: per PRM)
    prm: PRMTrainConfig = field(default_factory=lambda: PRMTrainConfig.preset("tiny", **PRM_DEFAULT_OVERRIDES["tiny"]))
    ablation_beta0: bool = False  # also train AgentPRM with beta = 0 (the L_A ablation, report section f)
    # With "mc" in objectives: also train `mc-la`, the MC PRM with L_Q + beta*L_A (prm.beta) on the same MC
    # labels, beside `mc` (L_Q only, the paper's literal MC; §9 item 12). TD vs mc-la isolates the labels
    # (AgentPRM trains with L_A too); both are Table 3 rows.
    mc_advantage_ablation: bool = False
    # search on the test split
    eval_tasks: int | None = 20  # None: every task of the test split
    bon: int = 16  # best-of-n curve 1..bon from one sampling run (64 for the paper's Table 3 and efficiency)
    # 4x4 took 310-362 s per PRM on 20 TextCraft tasks: outside the default's 15 minutes
    # (configs/textcraft-all.yaml runs it)
    beams: list[str] = field(default_factory=lambda: ["2x2"])
    random_baseline: bool = True  # a random scorer under best-of-n: the sanity floor
    # RFT, the paper's other training-based baseline: the SFT policy trained further (sft settings, these
    # epochs) on its own successful collected trajectories, then decoded greedily on the test tasks.
    rft: bool = False
    rft_epochs: float = 1.0
    # RFT's peak lr. None: continue at the lr SFT's schedule ended at (FINAL_LR_FRACTION of sft.lr), with no
    # warm-up. A number restarts SFT's schedule (warm-up, cosine) at that peak: `rft_lr: <sft.lr>` is what runs
    # before session 10 did, which on TextCraft took the policy from 23% to 7% greedy (its 28 steps all inside
    # the 30-step warm-up, the lr climbing back to ~10x where SFT had left it).
    rft_lr: float | None = None

    def rft_sft_config(self) -> SFTConfig:
        """The SFT settings RFT trains with: sft's, with rft_epochs and RFT's lr schedule (see rft_lr)."""
        from agentprm.policy.sft import FINAL_LR_FRACTION

        if self.rft_lr is None:
            return replace(self.sft, epochs=self.rft_epochs, lr=self.sft.lr * FINAL_LR_FRACTION, warmup_steps=0)
        return replace(self.sft, epochs=self.rft_epochs, lr=self.rft_lr)

    def beam_budgets(self) -> list[Budget]:
        return sorted({Budget.parse("beam", b) for b in self.beams})

    @classmethod
    def load(cls, path: str | Path | None, **overrides: Any) -> PipelineConfig:
        data: dict[str, Any] = {}
        if path is not None:
            import yaml

            p = Path(path)
            if not p.is_file():
                raise UserError(f"config {p} does not exist; give a YAML file (see configs/)")
            try:
                data = yaml.safe_load(p.read_text()) or {}
            except yaml.YAMLError as e:
                where = getattr(e, "problem_mark", None)
                at = f" at line {where.line + 1}" if where is not None else ""
                raise UserError(
                    f"config {p} is not valid YAML{at}; fix its syntax (see configs/ for examples)"
                ) from None
            except UnicodeDecodeError:
                raise UserError(f"config {p} is not UTF-8 text; give a YAML file (see configs/)") from None
            if not isinstance(data, dict):
                raise UserError(f"config {p} must be a YAML mapping of PipelineConfig fields")
        elif (overrides.get("env") or DEFAULT_ENV) in ENV_DEFAULTS:  # the embedded default, sized for that env
            data = dict(ENV_DEFAULTS[overrides.get("env") or DEFAULT_ENV])
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.from_dict(data)
        except UserError as e:
            if path is None:
                raise
            raise UserError(f"{path}: {e}") from None  # name the file the bad line is in

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        """A config from a mapping (YAML): typed sections built and checked, unknown keys a UserError."""
        data = dict(data)
        check_keys(cls, {k: v for k, v in data.items() if k not in ("sft", "prm")}, "config")
        if "sft" in data and not isinstance(data["sft"], SFTConfig):
            data["sft"] = from_mapping(SFTConfig, data["sft"], "sft", tiny=TinyPolicyConfig)
        preset = prm_preset_for(data.get("base", "tiny"), data.get("prm_preset", "auto"))
        prm = data.get("prm")
        if not isinstance(prm, PRMTrainConfig):
            given = (
                as_mapping(PRMTrainConfig, prm, "prm")
                if prm is not None
                else dict(PRM_DEFAULT_OVERRIDES.get(preset, {}))
            )
            check_keys(PRMTrainConfig, given, "prm")
            data["prm"] = PRMTrainConfig.preset(preset, **given)
        cfg = cls(**data)
        try:  # now, not when the train-prm stage meets it after demos, SFT and collect
            for objective in [cfg.prm.objective, *cfg.objectives]:
                replace(cfg.prm, objective=objective).validate()
        except ValueError as e:
            raise UserError(f"prm: {e} (objectives: {cfg.objectives}); fix it in the config") from None
        if cfg.mc_advantage_ablation and "mc" not in cfg.objectives:
            raise UserError(
                "mc_advantage_ablation trains mc-la on the MC labels, which only `mc` in objectives makes; "
                "add mc to objectives or set mc_advantage_ablation: false"
            )
        if cfg.mc_advantage_ablation and cfg.prm.mc_advantage_loss:
            raise UserError(
                "prm.mc_advantage_loss: true makes `mc` train with L_A too, the same PRM as mc-la "
                "(mc_advantage_ablation); set prm.mc_advantage_loss: false"
            )
        for b in cfg.beams:
            Budget.parse("beam", b)
        if cfg.rft_lr is not None and not cfg.rft_lr > 0:
            raise UserError(f"rft_lr = {cfg.rft_lr}: give a positive learning rate, or null for SFT's final lr")
        if cfg.bon < 1:
            raise UserError(f"bon = {cfg.bon}: best-of-n needs at least 1 sample per task")
        return cfg


# The embedded default's changes for other envs (`agentprm pipeline --env E` without a config).
# BabyAI's expert runs BFS and minigrid's bot (~0.3 s a demo, 78% solved): fewer demos.
# `agentprm pipeline` with neither a config nor --env runs DEFAULT_ENV: BabyAI is the env where the
# from-scratch policy leaves a PRM something to rank (greedy 30% vs pass@16 ~67%: docs/policy.md), and 50
# test tasks let the paired-bootstrap intervals separate methods. TextCraft's sizes are the dataclass's.
DEFAULT_ENV = "babyai"
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    # Action-only turns ("Action: turn left"): trained twice as long (1000 steps) they reach 34% greedy on
    # the 50 test tasks, above the expert's thoughts at 500 steps (30%), and a turn is ~5 generated tokens
    # instead of ~32, so every search stage is several times cheaper (docs/policy.md, session 5).
    "babyai": {
        "env": "babyai",
        "demos": 500,
        "thought_style": "none",
        "max_new_tokens": 32,
        # Phrase BPE (merges across spaces, never inside the names the actions copy): 1.37x fewer tokens
        # per prompt, the same greedy reward on the 50 test tasks (0.257 vs 0.257; docs/policy.md).
        "sft": {"epochs": 20.0, "batch_size": 8, "lr": 2e-3, "bf16": True, "tiny": {"tokenizer_merge": "phrase"}},
        # 10 rounds, not the paper's 20: failures (most T = 1 samples) run to the cap with a growing
        # history and were most of the sampling time; 102 of 106 successful test samples took <= 10 rounds.
        "max_rounds": 10,
        "eval_tasks": 50,
    },
    # TextCraft (docs/policy.md, session 7): the tiny policy's failures are counting (repeated crafts, items
    # got up front). The expert's brief thoughts number repeated crafts ("(2 of 3)"), a scratchpad: with
    # 10 epochs (2460 steps) greedy on the 100 test goals is 23% (action-only: 13% at 10 epochs, 4% at 3).
    "textcraft": {
        "env": "textcraft",
        "thought_style": "brief",
        "max_new_tokens": 64,
        "sft": {"epochs": 10.0, "batch_size": 8, "lr": 2e-3, "bf16": True},
    },
    # WebShop demos average ~1100 tokens (results pages): half would lose their last turns at 1024.
    "webshop": {
        "env": "webshop",
        "thought_style": None,
        "max_new_tokens": 96,
        "sft": {"epochs": 4.0, "batch_size": 8, "lr": 2e-3, "bf16": True, "max_length": 2304},
    },
    # Math (docs/math.md): generated demos are free and short (~5 one-line steps, ~100 tokens), so many
    # fresh ones rather than epochs; a step is one line (<= ~25 tokens); episodes are cheap, so more
    # training tasks, 100 test tasks and Table 2's beams. Session 6: 6000 demos (750 steps) gave greedy 10%
    # with 70% of calculation lines wrong, and 384 training trajectories (4.4% successful) taught the PRMs
    # nothing (step AUC 0.50-0.52): hence 16000 demos and 128 collect tasks (docs/math.md, "Measured").
    "math": {
        "env": "math",
        "demos": 16000,
        "thought_style": None,
        "max_new_tokens": 40,
        "sft": {"epochs": 2.0, "batch_size": 16, "lr": 2e-3, "bf16": True},
        "collect_tasks": 128,
        "eval_tasks": 100,
        "beams": ["2x2", "4x4", "8x8"],
    },
}
