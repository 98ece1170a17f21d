"""`agentprm pipeline`: demos -> sft -> collect -> label -> train PRMs -> search -> report, in one run folder.

Every stage writes its output into `runs/<name>/` (paths: `agentprm.run_layout.RunLayout`) and records what
produced it in `provenance/<output>.json` (`agentprm.stage_keys.Provenance`: the stage's key, its inputs,
whether it completed). A stage is skipped when its output is complete and its key matches the current config,
so an interrupted pipeline resumes where it stopped; a changed config redoes exactly the stages it affects
(`agentprm.stage_keys.STAGE_FIELDS`, docs/pipeline.md), removing their old output first; `force` redoes every
stage the same way. The stages call the same library functions as the individual commands, so a bigger
config (a pretrained base on GPUs: `configs/*.yaml`) runs the same code as the embedded default.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from agentprm.errors import UserError
from agentprm.pipeline_config import PipelineConfig
from agentprm.prm.config import PRMTrainConfig
from agentprm.run_layout import RunLayout
from agentprm.search.budget import Budget
from agentprm.stage_keys import STAGE_FIELDS, Provenance, StageKeys, key_hash


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


class Pipeline(StageKeys):
    def __init__(
        self,
        cfg: PipelineConfig,
        root: str | Path = "runs",
        force: bool = False,
        log: Callable[[str], None] = print,
        run_dir: str | Path | None = None,
        redo: Sequence[str] = (),
    ):
        super().__init__(cfg)
        self.redo = list(redo)  # stage names (or their first word: "search", "train-prm") to redo
        self.dir = Path(run_dir) if run_dir is not None else Path(root) / cfg.name
        self.layout = RunLayout(self.dir)
        self.force = force
        self.log = log
        self.eval_dir = self.layout.eval_dir(cfg.env)
        self._cleared: set[Path] = set()
        self._redone: set[str] = set()

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

    def command(self) -> str:
        """The command that runs (or resumes) this pipeline: every stage not yet complete."""
        return f"agentprm pipeline {self.layout.config} --runs {self.dir.parent} --name {self.dir.name}"

    # -- shared objects ---------------------------------------------------------------------------------
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

    # -- stages -----------------------------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        c = self.cfg
        ids_hash = lambda: key_hash(self._eval_ids())  # noqa: E731
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
                    ("collect", "sft", *(("label",) if self.uses_mc_labels(name) else ())),
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
                        "lr": c.rft_sft_config().lr,
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

        cfg = replace(self.cfg.rft_sft_config(), threads=self.cfg.threads, seed=self.cfg.seed)
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
        cfg = self.prm_config(name)
        mc = {"labels": str(self._label_path("mc")), "mc_advantage_loss": cfg.mc_advantage_loss}
        return {
            "policy": str(self.policy_dir),
            "trajectories": str(self.trajectories_path),
            "objective": cfg.objective,
            "beta": cfg.beta,
            "seed": self.cfg.seed,
            **(mc if self.uses_mc_labels(name) else {}),
        }

    def _prm_done(self, name: str) -> bool:
        from agentprm.prm.train import is_trained

        return is_trained(self.prm_dir(name))

    def _run_train(self, name: str) -> str:
        from agentprm.prm.train import train_prm

        trajs = self._usable_trajectories()
        mc_labels = None
        labelled = 0
        if self.uses_mc_labels(name):
            from agentprm.labels.store import read_labels

            mc_labels = {k: r.labels for k, r in read_labels(self._label_path("mc")).items()}
            labelled = sum(t.id in mc_labels for t in trajs)
        cfg = self.train_config(name, len(trajs), labelled)
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

    def train_config(self, name: str, trajectories: int, mc_labelled: int) -> PRMTrainConfig:
        """The PRM `name`'s training settings over `trajectories` usable collected trajectories of which
        `mc_labelled` carry MC labels: an MC PRM (`mc`, `mc-la`) gets its epochs scaled to the TD PRMs'
        optimiser steps (`mc_equal_steps`)."""
        cfg = self.prm_config(name)
        if self.uses_mc_labels(name) and self.cfg.mc_equal_steps and mc_labelled:
            cfg = replace(cfg, epochs=mc_epochs(cfg.epochs, cfg.batch_size, trajectories, mc_labelled))
        return cfg

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
