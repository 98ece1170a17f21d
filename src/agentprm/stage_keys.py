"""What each `agentprm pipeline` stage output depends on: its key (a hash of every input and setting, from
`PipelineConfig`), and `Provenance`, the record kept beside the output in `provenance/<output>.json`.

The pipeline skips a stage whose recorded key matches; the report excludes a result whose key does not
(stale). Both read the keys from here, so the report does not import the pipeline. The keys must stay
byte-identical across versions, or every existing run folder looks stale (tests/test_stage_keys.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from agentprm.pipeline_config import BETA0_RM, MC_LA_RM, PipelineConfig
from agentprm.policy.sft import HOW_FIELDS as SFT_HOW_FIELDS
from agentprm.prm.config import HOW_FIELDS, PRMTrainConfig
from agentprm.search.budget import Budget

# What each stage's output depends on besides the stages it reads: a change to any of these config fields
# makes that stage stale and, through its key, every stage that reads it (docs/pipeline.md has the table).
# Fields not listed (name, threads, device, batch_size) change how fast, not what is produced.
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "demos": ("env", "seed", "demos", "thought_style", "demo_renamed_copies"),
    "sft": ("base", "sft", "seed"),  # + demos
    "collect": ("collect_tasks", "n_per_task", "collect_temperature", "max_new_tokens", "seed", "max_rounds"),  # + sft
    "label": ("objectives (whether it has mc)", "mc_trajectories", "n_mc"),  # + collect
    "train-prm": ("prm_preset", "prm", "seed", "mc_equal_steps (mc, mc-la)"),  # + collect (+ label for mc, mc-la)
    "rft": ("rft_epochs", "rft_lr"),  # + sft, collect
    "search": ("eval_tasks", "max_new_tokens", "seed", "max_rounds", "bon (best-of-n)", "beams (beam)"),  # + sft, PRM
}
STAGE_READS = {
    "sft": "demos",
    "collect": "sft",
    "label": "collect",
    "train-prm": "collect (label for mc)",
    "search": "sft and the PRM it ranks with",
}


def key_hash(*parts: Any) -> str:
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


class StageKeys:
    """The key of every stage output of a pipeline run under `cfg` (`STAGE_FIELDS`). The test split's task
    ids are part of the search keys, so computing those makes the env once."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        self._ids: dict[tuple[str, int | None], list[str]] = {}

    def _spec(self):
        from agentprm.envs import get_spec

        return get_spec(self.cfg.env)

    def _task_ids(self, split: str, n: int | None) -> list[str]:
        if (split, n) not in self._ids:
            self._ids[(split, n)] = self._spec().make().task_ids(split, n)
        return self._ids[(split, n)]

    def config_hash(self) -> str:
        return key_hash(asdict(self.cfg))

    def _pick(self, *names: str) -> dict[str, Any]:
        return {n: getattr(self.cfg, n) for n in names}

    def demos_key(self) -> str:
        return key_hash("demos", self._pick(*STAGE_FIELDS["demos"]))

    def sft_key(self) -> str:
        sft = {k: v for k, v in asdict(self.cfg.sft).items() if k not in SFT_HOW_FIELDS}
        if sft["tiny"]["tokenizer_merge"] == "word":  # only when set: older run folders keep their keys
            del sft["tiny"]["tokenizer_merge"]
        if not sft["tiny"]["split_ids"]:  # likewise
            del sft["tiny"]["split_ids"]
        return key_hash("sft", self.demos_key(), self.cfg.base, sft, self.cfg.seed)

    def _rounds(self) -> list[Any]:
        # Only when set: run folders made before the field existed keep their keys.
        return [("max_rounds", self.cfg.max_rounds)] if self.cfg.max_rounds else []

    def collect_key(self) -> str:
        fields = [f for f in STAGE_FIELDS["collect"] if f != "max_rounds"]  # hashed by _rounds, only when set
        return key_hash("collect", self.sft_key(), self._pick(*fields), *self._rounds())

    def label_key(self) -> str:
        mc = (self.cfg.mc_trajectories, self.cfg.n_mc) if "mc" in self.cfg.objectives else None
        return key_hash("label", self.collect_key(), mc)

    def rm_names(self) -> list[str]:
        """The reward models the pipeline trains: one per objective, then the optional ablations."""
        extra = [MC_LA_RM] if self.cfg.mc_advantage_ablation and "mc" in self.cfg.objectives else []
        return list(self.cfg.objectives) + extra + ([BETA0_RM] if self.cfg.ablation_beta0 else [])

    def prm_config(self, name: str) -> PRMTrainConfig:
        c = replace(self.cfg.prm, objective=name, seed=self.cfg.seed, device=self.cfg.device)
        if name == BETA0_RM:
            return replace(c, objective="agentprm", beta=0.0)
        if name == MC_LA_RM:  # the MC labels' PRM with L_A at the config's beta (`mc` has none: §9 item 12)
            return replace(c, objective="mc", mc_advantage_loss=True)
        return c

    def uses_mc_labels(self, name: str) -> bool:
        """Whether the PRM `name` trains on the MC label file (so on the label stage): `mc` and `mc-la`."""
        return self.prm_config(name).objective == "mc"

    def prm_key(self, name: str) -> str:
        # HOW_FIELDS say how a PRM trains, not what: the same weights whatever they are
        prm = {k: v for k, v in asdict(self.prm_config(name)).items() if k not in HOW_FIELDS}
        mc = (self.label_key(), self.cfg.mc_equal_steps) if self.uses_mc_labels(name) else None
        return key_hash("prm", self.collect_key(), mc, name, prm)

    def _eval_ids(self) -> list[str]:
        return self._task_ids("test", self.cfg.eval_tasks)

    def samples_key(self) -> str:
        return key_hash(
            "samples",
            self.sft_key(),
            self._eval_ids(),
            self.cfg.bon,
            self.cfg.max_new_tokens,
            self.cfg.seed,
            *self._rounds(),
        )

    def rft_key(self) -> str:
        rft = self.cfg.rft_sft_config()  # its lr schedule: session 10 changed the default (rft_lr)
        return key_hash("rft", self.collect_key(), self.cfg.rft_epochs, rft.lr, rft.warmup_steps)

    def search_key(self, strategy: str, rm: str | None, budget: Budget) -> str:
        rm_key = self.rft_key() if rm == "rft" else self.prm_key(rm) if rm not in (None, "random") else rm
        samples = self.samples_key() if strategy == "bon" else None
        return key_hash(
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
