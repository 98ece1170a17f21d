"""`agentprm pipeline`: demos -> sft -> collect -> label -> train PRMs -> search -> report, in one run folder.

Every stage writes its output into `runs/<name>/` (paths: `agentprm.run_layout.RunLayout`) and records what
produced it in `provenance/<output>.json` (`Provenance`: the stage's key, its inputs, whether it completed).
A stage is skipped when its output is complete and its key matches the current config, so an interrupted
pipeline resumes where it stopped; a changed config redoes exactly the stages it affects (`STAGE_FIELDS`,
docs/pipeline.md), removing their old output first; `force` redoes every stage the same way. The stages
call the same library functions as the individual commands, so a bigger config (a pretrained base on GPUs:
`configs/*.yaml`) runs the same code as the embedded default.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from agentprm.errors import UserError
from agentprm.policy.sft import SFTConfig
from agentprm.policy.tiny import TinyPolicyConfig
from agentprm.prm.train import PRMTrainConfig
from agentprm.run_layout import RunLayout
from agentprm.search.budget import Budget
from agentprm.typed_config import as_mapping, check_keys, from_mapping


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
    # The expert's thoughts where it offers styles (textcraft: full | brief | none). The tiny default
    # uses "none" (action-only turns): as good as full thoughts on held-out goals (2% vs 4% greedy, both
    # noise) at half the SFT time, and 3x shorter turns to sample (docs/policy.md).
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
        for b in cfg.beams:
            Budget.parse("beam", b)
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


# What each stage's output depends on besides the stages it reads: a change to any of these config fields
# makes that stage stale and, through its key, every stage that reads it (docs/pipeline.md has the table).
# Fields not listed (name, threads, device, batch_size) change how fast, not what is produced.
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "demos": ("env", "seed", "demos", "thought_style", "demo_renamed_copies"),
    "sft": ("base", "sft", "seed"),  # + demos
    "collect": ("collect_tasks", "n_per_task", "collect_temperature", "max_new_tokens", "seed", "max_rounds"),  # + sft
    "label": ("objectives (whether it has mc)", "mc_trajectories", "n_mc"),  # + collect
    "train-prm": ("prm_preset", "prm", "seed", "mc_equal_steps (mc)"),  # + collect (+ label for mc)
    "rft": ("rft_epochs",),  # + sft, collect
    "search": ("eval_tasks", "max_new_tokens", "seed", "max_rounds", "bon (best-of-n)", "beams (beam)"),  # + sft, PRM
}
STAGE_READS = {
    "sft": "demos",
    "collect": "sft",
    "label": "collect",
    "train-prm": "collect (label for mc)",
    "search": "sft and the PRM it ranks with",
}


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Provenance:
    """What produced one stage output: the stage, its key (a hash of every input and setting it depends on),
    those inputs in words, whether it completed, and the command that (re)makes it."""

    stage: str
    key: str
    config_hash: str  # the whole config's hash (informative: staleness is judged on `key`)
    inputs: dict[str, Any]
    complete: bool
    command: str

    @classmethod
    def read(cls, path: Path) -> Provenance | None:
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            return None  # unreadable: treated as missing

    def write(self, path: Path) -> None:
        from agentprm.disk import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(asdict(self), indent=1))


@dataclass
class Stage:
    name: str
    output: Path
    key: Callable[[], str]
    inputs: Callable[[], dict[str, Any]]
    legacy_done: Callable[[], bool]  # the output looks complete (for outputs made before provenance existed)
    run: Callable[[], str]  # returns a one-line summary
    clear: Callable[[], None]  # removes the output (stale or forced)
    reads: tuple[str, ...] = ()  # the stages whose output this one reads (redoing one of them redoes this)


class Pipeline:
    def __init__(
        self,
        cfg: PipelineConfig,
        root: str | Path = "runs",
        force: bool = False,
        log: Callable[[str], None] = print,
        run_dir: str | Path | None = None,
        redo: Sequence[str] = (),
    ):
        self.cfg = cfg
        self.redo = list(redo)  # stage names (or their first word: "search", "train-prm") to redo
        self.dir = Path(run_dir) if run_dir is not None else Path(root) / cfg.name
        self.layout = RunLayout(self.dir)
        self.force = force
        self.log = log
        self.eval_dir = self.layout.eval_dir(cfg.env)
        self._cleared: set[Path] = set()
        self._redone: set[str] = set()
        self._ids: dict[tuple[str, int | None], list[str]] = {}

    @classmethod
    def for_folder(cls, run_dir: str | Path) -> Pipeline:
        """The pipeline of an existing run folder, from its config.yaml (UserError when it has none)."""
        cfg = PipelineConfig.load(RunLayout(run_dir).config)
        return cls(cfg, run_dir=run_dir, log=lambda _: None)

    # -- paths ------------------------------------------------------------------------------------------
    @property
    def demos_path(self) -> Path:
        return self.layout.demos

    @property
    def policy_dir(self) -> Path:
        return self.layout.policy

    @property
    def trajectories_path(self) -> Path:
        return self.layout.trajectories

    def prm_dir(self, name: str) -> Path:
        return self.layout.prm(name)

    def rm_names(self) -> list[str]:
        return list(self.cfg.objectives) + (["agentprm-beta0"] if self.cfg.ablation_beta0 else [])

    def command(self) -> str:
        """The command that runs (or resumes) this pipeline: every stage not yet complete."""
        return f"agentprm pipeline {self.layout.config} --runs {self.dir.parent} --name {self.dir.name}"

    # -- shared objects ---------------------------------------------------------------------------------
    def _spec(self):
        from agentprm.envs import get_spec

        return get_spec(self.cfg.env)

    def _task_ids(self, split: str, n: int | None) -> list[str]:
        if (split, n) not in self._ids:
            self._ids[(split, n)] = self._spec().make().task_ids(split, n)
        return self._ids[(split, n)]

    def _policy(self, policy_dir: Path | None = None):
        from agentprm.policy.hf import HFPolicy

        return HFPolicy.load(
            policy_dir or self.policy_dir,
            device=self.cfg.device,
            batch_size=self.cfg.batch_size,
            dtype=self.cfg.policy_dtype,
        )

    def _policy_dir_for(self, rm: str | None) -> Path:
        """The policy a search decodes: the RFT policy for its greedy search ("rft"), else the SFT policy."""
        return self.layout.rft_policy if rm == "rft" else self.policy_dir

    def _prm_arg(self, rm: str | None) -> str | None:
        return None if rm in (None, "random", "rft") else str(self.prm_dir(rm))

    def _env_factory(self):
        return self._spec().maker(self.cfg.max_rounds)

    # -- keys: what each output depends on (STAGE_FIELDS) --------------------------------------------------
    def config_hash(self) -> str:
        return _hash(asdict(self.cfg))

    def _pick(self, *names: str) -> dict[str, Any]:
        return {n: getattr(self.cfg, n) for n in names}

    def demos_key(self) -> str:
        return _hash("demos", self._pick(*STAGE_FIELDS["demos"]))

    def sft_key(self) -> str:
        sft = {k: v for k, v in asdict(self.cfg.sft).items() if k not in ("threads", "checkpoint_every")}
        if sft["tiny"]["tokenizer_merge"] == "word":  # only when set: older run folders keep their keys
            del sft["tiny"]["tokenizer_merge"]
        return _hash("sft", self.demos_key(), self.cfg.base, sft, self.cfg.seed)

    def _rounds(self) -> list[Any]:
        # Only when set: run folders made before the field existed keep their keys.
        return [("max_rounds", self.cfg.max_rounds)] if self.cfg.max_rounds else []

    def collect_key(self) -> str:
        fields = [f for f in STAGE_FIELDS["collect"] if f != "max_rounds"]  # hashed by _rounds, only when set
        return _hash("collect", self.sft_key(), self._pick(*fields), *self._rounds())

    def label_key(self) -> str:
        mc = (self.cfg.mc_trajectories, self.cfg.n_mc) if "mc" in self.cfg.objectives else None
        return _hash("label", self.collect_key(), mc)

    def prm_config(self, name: str) -> PRMTrainConfig:
        objective, beta = ("agentprm", 0.0) if name == "agentprm-beta0" else (name, self.cfg.prm.beta)
        return replace(self.cfg.prm, objective=objective, beta=beta, seed=self.cfg.seed, device=self.cfg.device)

    def prm_key(self, name: str) -> str:
        prm = {k: v for k, v in asdict(self.prm_config(name)).items() if k not in ("device", "checkpoint_every")}
        mc = (self.label_key(), self.cfg.mc_equal_steps) if name == "mc" else None
        return _hash("prm", self.collect_key(), mc, name, prm)

    def _eval_ids(self) -> list[str]:
        return self._task_ids("test", self.cfg.eval_tasks)

    def samples_key(self) -> str:
        return _hash(
            "samples",
            self.sft_key(),
            self._eval_ids(),
            self.cfg.bon,
            self.cfg.max_new_tokens,
            self.cfg.seed,
            *self._rounds(),
        )

    def rft_key(self) -> str:
        return _hash("rft", self.collect_key(), self.cfg.rft_epochs)

    def search_key(self, strategy: str, rm: str | None, budget: Budget) -> str:
        rm_key = self.rft_key() if rm == "rft" else self.prm_key(rm) if rm not in (None, "random") else rm
        samples = self.samples_key() if strategy == "bon" else None
        return _hash(
            "search",
            self.sft_key(),
            rm_key,
            samples,
            self._eval_ids(),
            strategy,
            str(budget),
            self.cfg.max_new_tokens,
            self.cfg.seed,
            *self._rounds(),
        )

    # -- stages -----------------------------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        c = self.cfg
        ids_hash = lambda: _hash(self._eval_ids())  # noqa: E731
        st = [
            Stage(
                "demos",
                self.demos_path,
                self.demos_key,
                lambda: self._pick(*STAGE_FIELDS["demos"]),
                self._demos_done,
                self._run_demos,
                lambda: self._remove(self.demos_path, self.layout.demos_done),
            ),
            Stage(
                "sft",
                self.policy_dir,
                self.sft_key,
                lambda: {"base": c.base, "demos": str(self.demos_path)},
                self._sft_done,
                self._run_sft,
                lambda: self._remove(self.policy_dir),
                ("demos",),
            ),
            Stage(
                "collect",
                self.trajectories_path,
                self.collect_key,
                lambda: {
                    "policy": str(self.policy_dir),
                    "tasks": {"split": "train", "n": c.collect_tasks},
                    "n_per_task": c.n_per_task,
                    "temperature": c.collect_temperature,
                    "seed": c.seed,
                },
                self._collect_done,
                self._run_collect,
                lambda: self._remove(self.trajectories_path),
                ("sft",),
            ),
            Stage(
                "label",
                self.layout.labels_dir,
                self.label_key,
                lambda: {"trajectories": str(self.trajectories_path), "mc": "mc" in c.objectives},
                self._label_done,
                self._run_label,
                lambda: self._remove(self.layout.labels_dir),
                ("collect", "sft"),
            ),
        ]
        for name in self.rm_names():
            st.append(
                Stage(
                    f"train-prm {name}",
                    self.prm_dir(name),
                    partial(self.prm_key, name),
                    partial(self._prm_stage_config, name),
                    partial(self._prm_done, name),
                    partial(self._run_train, name),
                    partial(self._remove, self.prm_dir(name)),
                    ("collect", "sft", *(("label",) if name == "mc" else ())),
                )
            )

        def search(strategy: str, rm: str | None, budget: Budget) -> Stage:
            path = self._search_path(strategy, rm, budget)
            label = f"search {strategy}" + (
                f" {rm}" if strategy == "greedy" and rm else f"@{budget} {rm}" if rm else ""
            )
            return Stage(
                label,
                path,
                lambda: self.search_key(strategy, rm, budget),
                lambda: {
                    "policy": str(self._policy_dir_for(rm)),
                    "prm": self._prm_arg(rm),
                    "tasks": {"split": "test", "n": c.eval_tasks, "ids_hash": ids_hash()},
                    "strategy": strategy,
                    "budget": str(budget),
                    "seed": c.seed,
                },
                lambda: self._search_done(strategy, rm, budget),
                lambda: self._run_search(strategy, rm, budget),
                lambda: self._remove(path),
                ("sft", *(("rft",) if rm == "rft" else (f"train-prm {rm}",) if rm not in (None, "random") else ())),
            )

        st.append(search("greedy", None, Budget(1)))
        if c.rft:
            st.insert(
                3,
                Stage(
                    "rft",
                    self.layout.rft_policy,
                    self.rft_key,
                    lambda: {
                        "policy": str(self.policy_dir),
                        "trajectories": str(self.trajectories_path),
                        "epochs": c.rft_epochs,
                    },
                    lambda: self._sft_done(self.layout.rft_policy),
                    self._run_rft,
                    lambda: self._remove(self.layout.rft_policy),
                    ("collect", "sft"),
                ),
            )
            st.append(search("greedy", "rft", Budget(1)))
        for rm in self.rm_names() + (["random"] if c.random_baseline else []):
            st.append(search("bon", rm, Budget(c.bon)))
        for budget in c.beam_budgets():
            for rm in self.rm_names():
                st.append(search("beam", rm, budget))
        return st

    def stage_status(self, stage: Stage) -> str:
        """ "complete" | "partial" (started, not finished) | "stale" (made under other settings) | "missing" |
        "legacy" (complete-looking output made before provenance was recorded)."""
        prov = Provenance.read(self.layout.provenance(stage.output))
        if prov is None:
            return "legacy" if stage.legacy_done() else "missing"
        if prov.key != stage.key():
            return "stale"
        return "complete" if prov.complete and stage.legacy_done() else "partial"

    def run(self) -> Path:
        import torch

        from agentprm import memory

        torch.set_num_threads(self.cfg.threads)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        stages = self.stages()
        redo = self._redo_set(stages)
        self._redone = redo
        total = len(stages) + 1
        t0 = time.time()
        for i, stage in enumerate(stages, 1):
            head = f"[{i}/{total}] {stage.name}"
            status = self.stage_status(stage)
            forced = stage.name in redo
            if not forced and status in ("complete", "legacy"):
                note = " (made before provenance was recorded; --force redoes it)" if status == "legacy" else ""
                self.log(f"{head}: already complete, skipped{note}")
                continue
            if forced or status == "stale":
                if stage.output not in self._cleared:
                    stage.clear()
                    self._cleared.add(stage.output)
                if status == "stale":
                    self.log(f"{head}: made under other settings: removed, redoing")
            prov = Provenance(stage.name, stage.key(), self.config_hash(), stage.inputs(), False, self.command())
            prov.write(self.layout.provenance(stage.output))
            ts = time.time()
            self._stage_event(stage.name, "start")
            with memory.PeakSampler() as sampled:  # this stage's own peak (docs/search.md, Memory)
                summary = stage.run()
            peak = sampled.peak_mib
            memory.release_memory()  # what the stage left cached must not add to the next stage's peak
            replace(prov, complete=True).write(self.layout.provenance(stage.output))
            self._stage_event(
                stage.name,
                "end",
                seconds=round(time.time() - ts, 3),
                summary=summary,
                peak_rss_mib=round(peak, 1),
                rss_after_mib=round(memory.rss_mib(), 1),
            )
            self.log(f"{head}: {summary} ({time.time() - ts:.0f} s, peak RSS {peak / 1024:.1f} GiB)")
        ts = time.time()
        self._stage_event("report", "start")
        summary = self._run_report()
        self._stage_event("report", "end", seconds=round(time.time() - ts, 3), summary=summary)
        self.log(f"[{total}/{total}] report: {summary} ({time.time() - ts:.0f} s)")
        self.log(f"pipeline finished in {(time.time() - t0) / 60:.1f} min: {self.layout.report}")
        return self.layout.report

    def _redo_set(self, stages: list[Stage]) -> set[str]:
        """The stages to redo: every one under `force`; else those named in `redo` (a full name or its first
        word) and every stage that reads a redone one."""
        if self.force:
            return {s.name for s in stages}
        names = [s.name for s in stages]
        unknown = [r for r in self.redo if not any(n == r or n.split()[0] == r for n in names)]
        if unknown:
            raise UserError(f"--redo {unknown[0]!r} names no stage; stages: {', '.join(names)}")
        out: set[str] = set()
        for s in stages:  # in order: a stage's readers come after it
            if any(s.name == r or s.name.split()[0] == r for r in self.redo) or any(r in out for r in s.reads):
                out.add(s.name)
        return out

    def _remove(self, *paths: Path) -> None:
        for p in paths:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def _stage_event(self, stage: str, event: str, **extra: Any) -> None:
        """Append to stages.jsonl: `agentprm view` shows each stage's status and time (a run in progress too)."""
        from agentprm.trajectory import JsonlWriter

        with JsonlWriter(self.layout.stage_log) as w:
            w.write({"stage": stage, "event": event, "time": time.time(), **extra})

    def _write_config(self) -> None:
        import yaml

        from agentprm.disk import atomic_write_text

        atomic_write_text(self.layout.config, yaml.safe_dump(asdict(self.cfg), sort_keys=False))

    # demos
    def _demos_done(self) -> bool:
        # A marker, not a count: envs that write successes only (BabyAI) never reach `demos` records.
        return self.layout.demos_done.is_file() and self.demos_path.exists()

    def _run_demos(self) -> str:
        from agentprm.envs.demos import run_expert

        with _bar("demos") as (bar, job):
            s = run_expert(
                self.cfg.env,
                "train",
                self.cfg.demos,
                self.demos_path,
                seed=self.cfg.seed,
                keep_failures=False,
                thought_style=self.cfg.thought_style,
                renamed_copies=self.cfg.demo_renamed_copies,
                on_start=lambda n: bar.update(job, total=n),
                on_episode=lambda t, s: bar.update(job, advance=1, status=f"success {s.ok}/{s.tried}"),
                workers=max(1, self.cfg.threads),
            )
        self.layout.demos_done.write_text(f"{s.ok}/{s.tried} successful, {s.skipped} resumed\n")
        return f"expert success {s.ok}/{s.tried} ({s.skipped} resumed)"

    # sft
    def _sft_done(self, policy_dir: Path | None = None) -> bool:
        from agentprm.policy.sft import is_trained

        return is_trained(policy_dir or self.policy_dir)

    def _run_sft(self) -> str:
        from agentprm.policy.sft import train_sft

        cfg = replace(self.cfg.sft, threads=self.cfg.threads, seed=self.cfg.seed)
        with _bar("sft") as (bar, job):

            def on_step(step: int, total: int, loss: float) -> None:
                bar.update(job, total=total, completed=step, status=f"loss {loss:.3f}")

            res = train_sft(self.demos_path, self.cfg.base, self.policy_dir, cfg, on_step=on_step)
        return f"policy -> {self.policy_dir} ({res.summary()})"

    def _run_rft(self) -> str:
        """RFT: continue training the SFT policy on its own successful collected trajectories (train split)."""
        from agentprm.policy.sft import train_sft
        from agentprm.trajectory import read_trajectories

        cfg = replace(self.cfg.sft, epochs=self.cfg.rft_epochs, threads=self.cfg.threads, seed=self.cfg.seed)
        out = self.layout.rft_policy
        wins = sum(t.success for t in read_trajectories(self.trajectories_path))
        if not wins:  # fine-tuning on no data leaves the policy as it is: say so rather than fail the run
            shutil.copytree(self.policy_dir, out, dirs_exist_ok=True)
            (out / "RFT_NOTE.txt").write_text("no successful collected trajectory: the RFT policy is the SFT policy\n")
            return f"RFT policy -> {out}: no successful collected trajectory, so it is the SFT policy unchanged"
        with _bar("rft") as (bar, job):

            def on_step(step: int, total: int, loss: float) -> None:
                bar.update(job, total=total, completed=step, status=f"loss {loss:.3f}")

            res = train_sft(self.trajectories_path, str(self.policy_dir), out, cfg, on_step=on_step)
        return f"RFT policy -> {out} ({res.summary()})"

    # collect
    def _collect_ids(self) -> list[str]:
        return self._task_ids("train", self.cfg.collect_tasks)

    def _collect_done(self) -> bool:
        from agentprm.rollout_io import done_ids

        return self.trajectories_path.exists() and len(done_ids(self.trajectories_path)) >= (
            len(self._collect_ids()) * self.cfg.n_per_task
        )

    def _run_collect(self) -> str:
        from agentprm.rollout.engine import RolloutConfig
        from agentprm.rollout.jobs import rollout_tasks, summarize_file

        ids = self._collect_ids()
        cfg = RolloutConfig(
            temperature=self.cfg.collect_temperature,
            max_new_tokens=self.cfg.max_new_tokens,
            batch_size=self.cfg.batch_size,
        )
        with _bar("collect", total=len(ids) * self.cfg.n_per_task) as (bar, job):

            def on_done(traj, s) -> None:
                bar.update(job, advance=1, status=f"success {s.successes}/{s.written}")

            policy = self._policy()
            if policy.prefix_store is not None:
                self.log(f"collect: {policy.prefix_store.describe()}")
            rollout_tasks(
                policy,
                self._env_factory(),
                ids,
                self.trajectories_path,
                n_per_task=self.cfg.n_per_task,
                cfg=cfg,
                seed=self.cfg.seed,
                on_done=on_done,
            )
        f = summarize_file(self.trajectories_path)
        return (
            f"{f.trajectories} trajectories, success {f.success_rate:.1%}, pass@{self.cfg.n_per_task} {f.pass_at_n:.1%}"
        )

    # label (TD labels are recomputed inside training, Algorithm 1; these files record label cost and
    # the outcome labels for inspection/export)
    def _label_path(self, method: str) -> Path:
        return self.layout.label(method)

    def _label_done(self) -> bool:
        from agentprm.labels.store import read_labels

        if not all(self._label_path(m).exists() for m in ("td-gae", "pvm", "orm")):
            return False
        if "mc" not in self.cfg.objectives:
            return True
        path = self._label_path("mc")
        return path.exists() and set(read_labels(path)) >= {t.id for t in self._mc_trajectories()}

    def _usable_trajectories(self):
        from agentprm.labels.run import usable
        from agentprm.trajectory import read_trajectories

        return [t for t in read_trajectories(self.trajectories_path) if usable(t)]

    def _mc_trajectories(self):
        """The MC subset: round-robin over tasks (sample 0 of every task, then sample 1, ...)."""
        by_task: dict[str, list] = {}
        for t in self._usable_trajectories():
            by_task.setdefault(t.task_id, []).append(t)
        if self.cfg.mc_trajectories is None:  # the paper: one seed trajectory per training task
            return [ts[0] for ts in by_task.values()]
        spread = [
            ts[k] for k in range(max(map(len, by_task.values()), default=0)) for ts in by_task.values() if k < len(ts)
        ]
        return spread[: self.cfg.mc_trajectories]

    def _run_label(self) -> str:
        from agentprm.labels.outcome import LabelSettings
        from agentprm.labels.run import outcome_label_records
        from agentprm.trajectory import JsonlWriter

        trajs = self._usable_trajectories()
        for method in ("td-gae", "pvm", "orm"):
            path = self._label_path(method)
            path.unlink(missing_ok=True)
            with JsonlWriter(path) as w:
                for rec in outcome_label_records(method, trajs, LabelSettings(), None):
                    w.write(rec.to_dict())
        done = f"labelled {len(trajs)} trajectories with td-gae, pvm, orm"
        if "mc" in self.cfg.objectives:
            done += f"; {self._run_mc_labels()}"
        return f"{done} -> {self.dir / 'labels'}"

    def _run_mc_labels(self) -> str:
        """MC labels of the subset (resumable: trajectories already in mc.jsonl are skipped)."""
        from agentprm.labels.run import mc_label_records
        from agentprm.labels.store import read_labels
        from agentprm.trajectory import JsonlWriter

        path = self._label_path("mc")
        done = set(read_labels(path)) if path.exists() else set()
        todo = [t for t in self._mc_trajectories() if t.id not in done]
        records = mc_label_records(
            todo,
            self._env_factory(),
            self._policy(),
            n_mc=self.cfg.n_mc,
            temperature=self.cfg.collect_temperature,
            max_new_tokens=self.cfg.max_new_tokens,
            seed=self.cfg.seed,
        )
        tokens = 0
        with JsonlWriter(path) as w, _bar("mc labels", total=len(todo)) as (bar, job):
            for rec in records:
                w.write(rec.to_dict())
                tokens += rec.sampled_tokens
                bar.update(job, advance=1, status=f"{tokens} tokens")
        return f"mc (N_mc={self.cfg.n_mc}) on {len(todo)} trajectories ({len(done)} resumed), {tokens} sampled tokens"

    # PRMs
    def _prm_stage_config(self, name: str) -> dict[str, Any]:
        return {
            "policy": str(self.policy_dir),
            "trajectories": str(self.trajectories_path),
            "objective": self.prm_config(name).objective,
            "beta": self.prm_config(name).beta,
            "seed": self.cfg.seed,
        }

    def _prm_done(self, name: str) -> bool:
        from agentprm.prm.train import is_trained

        return is_trained(self.prm_dir(name))

    def _run_train(self, name: str) -> str:
        from agentprm.prm.train import train_prm

        cfg = self.prm_config(name)
        trajs = self._usable_trajectories()
        mc_labels = None
        if cfg.objective == "mc":
            from agentprm.labels.store import read_labels

            mc_labels = {k: r.labels for k, r in read_labels(self._label_path("mc")).items()}
            labelled = sum(t.id in mc_labels for t in trajs)
            if self.cfg.mc_equal_steps and labelled:
                cfg = replace(cfg, epochs=mc_epochs(cfg.epochs, cfg.batch_size, len(trajs), labelled))
        with _bar(f"train {name}") as (bar, job):
            rate = [0.0]

            def on_step(step: int, total: int, lq: float, la: float) -> None:
                bar.update(job, total=total, completed=step, status=f"L_Q {lq:.4f} L_A {la:.4f} {rate[0]:,.0f} tok/s")

            res = train_prm(
                trajs,
                self.policy_dir,
                self.prm_dir(name),
                cfg,
                mc_labels=mc_labels,
                on_step=on_step,
                on_rate=lambda r: rate.__setitem__(0, r),
            )
        return f"{name} -> {self.prm_dir(name)} ({_short(res)})"

    # search
    def _search_path(self, strategy: str, rm: str | None, budget: Budget) -> Path:
        return self.layout.result(self.cfg.env, strategy, rm, budget)

    def _search_done(self, strategy: str, rm: str | None, budget: Budget) -> bool:
        from agentprm.rollout_io import done_task_ids

        path = self._search_path(strategy, rm, budget)
        return path.exists() and set(self._eval_ids()) <= done_task_ids(path)

    def _samples(self) -> Path:
        """The best-of-n samples every RM ranks, removed first when they were drawn under other settings."""
        path = self.layout.samples(self.cfg.env, self.cfg.bon)
        prov_path = self.layout.provenance(path)
        prov = Provenance.read(prov_path)
        stale = prov is not None and prov.key != self.samples_key()
        redone = any(n.startswith("search bon") for n in self._redone)  # fresh samples for a redone best-of-n
        if path not in self._cleared and (redone or stale):
            self._remove(path)
            self._cleared.add(path)
        if prov is None or stale or path in self._cleared:
            Provenance(
                "samples",
                self.samples_key(),
                self.config_hash(),
                {"policy": str(self.policy_dir), "n": self.cfg.bon, "tasks": self.cfg.eval_tasks},
                True,
                self.command(),
            ).write(prov_path)
        return path

    def _run_search(self, strategy: str, rm: str | None, budget: Budget) -> str:
        from agentprm.labels.outcome import metric_value
        from agentprm.search.loading import load_reward_model
        from agentprm.search.runner import SearchSpec, run_search

        ids = self._eval_ids()
        spec = SearchSpec(strategy, str(budget), max_new_tokens=self.cfg.max_new_tokens, seed=self.cfg.seed)
        model = None
        if rm is not None and rm != "rft":
            model = load_reward_model("random" if rm == "random" else str(self.prm_dir(rm)))
        path = self._search_path(strategy, rm, budget)
        samples = self._samples() if strategy == "bon" else None
        key = self.search_key(strategy, rm, budget)
        extra = {
            "policy": str(self._policy_dir_for(rm)),
            "prm": self._prm_arg(rm),
            "provenance": {"key": key, "config_hash": self.config_hash()},
        }
        with _bar(f"{strategy} {budget} {rm or ''}", total=len(ids)) as (bar, job):
            records = run_search(
                self._policy(self._policy_dir_for(rm)),
                model,
                self._env_factory(),
                ids,
                spec,
                path,
                chunk_size=16,
                samples_path=samples,
                command=self.command(),
                extra_config=extra,
                on_progress=lambda k, res: bar.update(job, advance=len(res)),
            )
        metric = self._spec().metric
        vals = [metric_value(t, metric) for t in records]
        return f"{metric} {sum(vals) / max(len(vals), 1):.3f} on {len(vals)} test tasks -> {path}"

    def _run_report(self) -> str:
        from agentprm.report.build import write_report

        return f"report -> {write_report(self.dir)}"


def mc_epochs(epochs: int, batch_size: int, td_items: int, mc_items: int) -> int:
    """Epochs over the `mc_items` MC-labelled trajectories that give the optimiser steps nearest to `epochs`
    over all `td_items` (what the TD PRMs get)."""
    import math

    td_steps = math.ceil(td_items / batch_size) * epochs
    per_epoch = math.ceil(mc_items / batch_size)
    return max(1, round(td_steps / per_epoch))


def _short(res: Any) -> str:
    d = asdict(res) if hasattr(res, "__dataclass_fields__") else {}
    keep = {k: v for k, v in d.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(keep.items())[:4])


class _bar:
    """A rich progress bar for one stage (total may be set later)."""

    def __init__(self, what: str, total: int | None = None):
        from agentprm.progress import progress

        self.p = progress()
        self.what, self.total = what, total

    def __enter__(self):
        self.p.__enter__()
        job = self.p.add_task(self.what, total=self.total, status="")
        return self.p, job

    def __exit__(self, *exc: Any) -> None:
        self.p.__exit__(*exc)
