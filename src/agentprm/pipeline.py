"""`agentprm pipeline`: demos -> sft -> collect -> label -> train PRMs -> search -> report, in one run folder.

Every stage writes its output into `runs/<name>/` (layout: `agentprm.report.layout`) and is skipped when
that output is complete, so an interrupted pipeline resumes where it stopped; `force` redoes everything.
The stages call the same library functions as the individual commands, so a bigger config (a
pretrained base on GPUs: `configs/*.yaml`) runs the same code as the embedded default.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from agentprm.errors import UserError


@dataclass
class PipelineConfig:
    """The embedded default (TextCraft, tiny from-scratch policy), sized for ~15 minutes on 2 CPU cores.

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
    policy_dtype: str = "float32"  # the SFT policy's weights when sampling (bfloat16: ~2x faster for pretrained bases on CPU)
    # batch 8 (3 epochs, 738 steps, 255 s) beat batch 32 (5 epochs, 361 s): greedy train 14% vs 6%, test 4% vs 2%
    sft: dict[str, Any] = field(default_factory=lambda: {"epochs": 3.0, "batch_size": 8, "lr": 2e-3, "bf16": True})
    # collect: N trajectories per training task at temperature 1.0 (paper)
    collect_tasks: int = 24
    n_per_task: int = 16
    collect_temperature: float = 1.0
    max_new_tokens: int = 48  # action-only turns are <= ~25 tokens
    batch_size: int = 64
    # PRMs: one per objective, initialised from the SFT policy (paper)
    objectives: list[str] = field(default_factory=lambda: ["agentprm", "pvm", "orm"])  # + "mc" (costly)
    # MC labels (objective "mc"): N_mc rollouts from every step of this many collected trajectories,
    # spread over the tasks (paper: N_mc = 16 on all of them; here a subset bounds the cost)
    mc_trajectories: int = 64
    n_mc: int = 16
    prm_preset: str = "tiny"
    # PRMTrainConfig overrides; 1 epoch: three PRMs in ~2 min (2 epochs took 100-127 s each)
    prm: dict[str, Any] = field(default_factory=lambda: {"epochs": 1})
    ablation_beta0: bool = False  # also train AgentPRM with beta = 0 (the L_A ablation, report section f)
    # search on the test split
    eval_tasks: int = 20
    bon: int = 16  # best-of-n curve 1..bon from one sampling run
    # 4x4 took 310-362 s per PRM on 20 TextCraft tasks: outside the default's 15 minutes
    # (configs/textcraft-all.yaml runs it)
    beams: list[str] = field(default_factory=lambda: ["2x2"])
    random_baseline: bool = True  # a random scorer under best-of-n: the sanity floor

    @classmethod
    def load(cls, path: str | Path | None, **overrides: Any) -> PipelineConfig:
        data: dict[str, Any] = {}
        if path is not None:
            import yaml

            p = Path(path)
            if not p.is_file():
                raise UserError(f"config {p} does not exist; give a YAML file (see configs/)")
            data = yaml.safe_load(p.read_text()) or {}
            if not isinstance(data, dict):
                raise UserError(f"config {p} must be a YAML mapping of PipelineConfig fields")
        elif overrides.get("env") in ENV_DEFAULTS:  # the embedded default, sized for that env
            data = dict(ENV_DEFAULTS[overrides["env"]])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown config keys {unknown}; valid: {', '.join(sorted(known))}")
        cfg = cls(**data)
        return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


# The embedded default's changes for other envs (`agentprm pipeline --env E` without a config).
# BabyAI's expert runs BFS and minigrid's bot (~0.3 s a demo, 78% solved): fewer demos.
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "babyai": {"env": "babyai", "demos": 500, "thought_style": None, "max_new_tokens": 96,
               "sft": {"epochs": 10.0, "batch_size": 8, "lr": 2e-3, "bf16": True}},  # docs/policy.md
    # WebShop demos average ~1100 tokens (results pages): half would lose their last turns at 1024.
    "webshop": {"env": "webshop", "thought_style": None, "max_new_tokens": 96,
                "sft": {"epochs": 4.0, "batch_size": 8, "lr": 2e-3, "bf16": True, "max_length": 2304}},
}


@dataclass
class Stage:
    name: str
    done: Callable[[], bool]
    run: Callable[[], str]  # returns a one-line summary


class Pipeline:
    def __init__(self, cfg: PipelineConfig, root: str | Path = "runs", force: bool = False,
                 log: Callable[[str], None] = print):
        self.cfg = cfg
        self.dir = Path(root) / cfg.name
        self.force = force
        self.log = log
        self.eval_dir = self.dir / "eval" / cfg.env

    # -- paths ------------------------------------------------------------------------------------------
    @property
    def demos_path(self) -> Path:
        return self.dir / "demos.jsonl"

    @property
    def policy_dir(self) -> Path:
        return self.dir / "policy"

    @property
    def trajectories_path(self) -> Path:
        return self.dir / "trajectories.jsonl"

    def prm_dir(self, name: str) -> Path:
        return self.dir / "prm" / name

    def rm_names(self) -> list[str]:
        return list(self.cfg.objectives) + (["agentprm-beta0"] if self.cfg.ablation_beta0 else [])

    # -- shared objects ---------------------------------------------------------------------------------
    def _spec(self):
        from agentprm.envs import get_spec

        return get_spec(self.cfg.env)

    def _task_ids(self, split: str, n: int) -> list[str]:
        return self._spec().make().task_ids(split, n)

    def _policy(self):
        from agentprm.policy.hf import HFPolicy

        return HFPolicy.load(self.policy_dir, device=self.cfg.device, batch_size=self.cfg.batch_size,
                             dtype=self.cfg.policy_dtype)

    def _env_factory(self):
        spec = self._spec()
        return spec.make

    # -- stages -----------------------------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        c = self.cfg
        st = [
            Stage("demos", self._demos_done, self._run_demos),
            Stage("sft", self._sft_done, self._run_sft),
            Stage("collect", self._collect_done, self._run_collect),
            Stage("label", self._label_done, self._run_label),
        ]
        for name in self.rm_names():
            st.append(Stage(f"train-prm {name}", lambda n=name: self._prm_done(n), lambda n=name: self._run_train(n)))
        st.append(Stage("search greedy", lambda: self._search_done("greedy", None, "1"),
                        lambda: self._run_search("greedy", None, "1")))
        rms = self.rm_names() + (["random"] if c.random_baseline else [])
        for rm in rms:
            st.append(Stage(f"search bon@{c.bon} {rm}", lambda r=rm: self._search_done("bon", r, str(c.bon)),
                            lambda r=rm: self._run_search("bon", r, str(c.bon))))
        for budget in c.beams:
            for rm in self.rm_names():
                st.append(Stage(f"search beam@{budget} {rm}", lambda r=rm, b=budget: self._search_done("beam", r, b),
                                lambda r=rm, b=budget: self._run_search("beam", r, b)))
        st.append(Stage("report", lambda: False, self._run_report))
        return st

    def run(self) -> Path:
        import torch

        torch.set_num_threads(self.cfg.threads)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        stages = self.stages()
        t0 = time.time()
        for i, stage in enumerate(stages, 1):
            head = f"[{i}/{len(stages)}] {stage.name}"
            if not self.force and stage.done():
                self.log(f"{head}: already complete, skipped")
                continue
            ts = time.time()
            summary = stage.run()
            self.log(f"{head}: {summary} ({time.time() - ts:.0f} s)")
        self.log(f"pipeline finished in {(time.time() - t0) / 60:.1f} min: {self.dir / 'report.md'}")
        return self.dir / "report.md"

    def _write_config(self) -> None:
        import yaml

        (self.dir / "config.yaml").write_text(yaml.safe_dump(asdict(self.cfg), sort_keys=False))

    # demos
    def _demos_done(self) -> bool:
        # A marker, not a count: envs that write successes only (BabyAI) never reach `demos` records.
        return (self.dir / "demos.done").is_file() and self.demos_path.exists()

    def _run_demos(self) -> str:
        from agentprm.envs.demos import run_expert

        if self.force and self.demos_path.exists():
            self.demos_path.unlink()
        with _bar("demos") as (bar, job):
            s = run_expert(self.cfg.env, "train", self.cfg.demos, self.demos_path, seed=self.cfg.seed,
                           keep_failures=False, thought_style=self.cfg.thought_style,
                           renamed_copies=self.cfg.demo_renamed_copies,
                           on_start=lambda n: bar.update(job, total=n),
                           on_episode=lambda t, s: bar.update(job, advance=1, status=f"success {s.ok}/{s.tried}"))
        (self.dir / "demos.done").write_text(f"{s.ok}/{s.tried} successful, {s.skipped} resumed\n")
        return f"expert success {s.ok}/{s.tried} ({s.skipped} resumed)"

    # sft
    def _sft_done(self) -> bool:
        from agentprm.policy.sft import is_trained

        return is_trained(self.policy_dir)

    def _run_sft(self) -> str:
        from agentprm.policy.sft import SFTConfig, train_sft

        sft_fields = {f.name for f in fields(SFTConfig)}
        bad = sorted(set(self.cfg.sft) - sft_fields)
        if bad:
            raise UserError(f"unknown sft keys {bad}; valid: {', '.join(sorted(sft_fields))}")
        from agentprm.policy.tiny import TinyPolicyConfig

        sft = {**self.cfg.sft, "threads": self.cfg.threads, "seed": self.cfg.seed}
        sft["tiny"] = TinyPolicyConfig(**sft.get("tiny", {}))
        cfg = SFTConfig(**sft)
        with _bar("sft") as (bar, job):
            def on_step(step: int, total: int, loss: float) -> None:
                bar.update(job, total=total, completed=step, status=f"loss {loss:.3f}")

            res = train_sft(self.demos_path, self.cfg.base, self.policy_dir, cfg, on_step=on_step)
        return f"policy -> {self.policy_dir} ({res.summary()})"

    # collect
    def _collect_ids(self) -> list[str]:
        return self._task_ids("train", self.cfg.collect_tasks)

    def _collect_done(self) -> bool:
        from agentprm.rollout_io import done_ids

        return self.trajectories_path.exists() and len(done_ids(self.trajectories_path)) >= (
            len(self._collect_ids()) * self.cfg.n_per_task)

    def _run_collect(self) -> str:
        from agentprm.rollout.engine import RolloutConfig
        from agentprm.rollout.jobs import pass_at_n, rollout_tasks
        from agentprm.trajectory import read_trajectories

        ids = self._collect_ids()
        cfg = RolloutConfig(temperature=self.cfg.collect_temperature, max_new_tokens=self.cfg.max_new_tokens,
                            batch_size=self.cfg.batch_size)
        with _bar("collect", total=len(ids) * self.cfg.n_per_task) as (bar, job):
            def on_done(traj, s) -> None:
                bar.update(job, advance=1, status=f"success {s.successes}/{s.written}")

            rollout_tasks(self._policy(), self._env_factory(), ids, self.trajectories_path,
                          n_per_task=self.cfg.n_per_task, cfg=cfg, seed=self.cfg.seed, on_done=on_done)
        trajs = read_trajectories(self.trajectories_path)
        rate = sum(t.success for t in trajs) / max(len(trajs), 1)
        return f"{len(trajs)} trajectories, success {rate:.1%}, pass@{self.cfg.n_per_task} {pass_at_n(trajs):.1%}"

    # label (TD labels are recomputed inside training, Algorithm 1; these files record label cost and
    # the outcome labels for inspection/export)
    def _label_path(self, method: str) -> Path:
        return self.dir / "labels" / f"{method}.jsonl"

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
        spread = [ts[k] for k in range(max(map(len, by_task.values()), default=0)) for ts in by_task.values() if k < len(ts)]
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
        records = mc_label_records(todo, self._env_factory(), self._policy(), n_mc=self.cfg.n_mc,
                                   temperature=self.cfg.collect_temperature,
                                   max_new_tokens=self.cfg.max_new_tokens, seed=self.cfg.seed)
        tokens = 0
        with JsonlWriter(path) as w, _bar("mc labels", total=len(todo)) as (bar, job):
            for rec in records:
                w.write(rec.to_dict())
                tokens += rec.sampled_tokens
                bar.update(job, advance=1, status=f"{tokens} tokens")
        return f"mc (N_mc={self.cfg.n_mc}) on {len(todo)} trajectories ({len(done)} resumed), {tokens} sampled tokens"

    # PRMs
    def _prm_done(self, name: str) -> bool:
        from agentprm.prm.train import is_trained

        return is_trained(self.prm_dir(name))

    def _run_train(self, name: str) -> str:
        from agentprm.prm.train import PRMTrainConfig, train_prm

        objective, beta = (("agentprm", 0.0) if name == "agentprm-beta0" else (name, self.cfg.prm.get("beta", 1.0)))
        cfg = PRMTrainConfig.preset(self.cfg.prm_preset, **{**self.cfg.prm, "objective": objective, "beta": beta,
                                                              "seed": self.cfg.seed, "device": self.cfg.device})
        trajs = self._usable_trajectories()
        mc_labels = None
        if objective == "mc":
            from agentprm.labels.store import read_labels

            mc_labels = {k: r.labels for k, r in read_labels(self._label_path("mc")).items()}
        with _bar(f"train {name}") as (bar, job):
            def on_step(step: int, total: int, lq: float, la: float) -> None:
                bar.update(job, total=total, completed=step, status=f"L_Q {lq:.4f} L_A {la:.4f}")

            res = train_prm(trajs, self.policy_dir, self.prm_dir(name), cfg, mc_labels=mc_labels, on_step=on_step)
        return f"{name} -> {self.prm_dir(name)} ({_short(res)})"

    # search
    def _search_path(self, strategy: str, rm: str | None, budget: str) -> Path:
        if strategy == "greedy":
            return self.eval_dir / "greedy.jsonl"
        return self.eval_dir / rm / f"{strategy}_{budget}.jsonl"

    def _eval_ids(self) -> list[str]:
        return self._task_ids("test", self.cfg.eval_tasks)

    def _search_done(self, strategy: str, rm: str | None, budget: str) -> bool:
        from agentprm.rollout_io import done_task_ids

        path = self._search_path(strategy, rm, budget)
        return path.exists() and set(self._eval_ids()) <= done_task_ids(path)

    def _run_search(self, strategy: str, rm: str | None, budget: str) -> str:
        from agentprm.search.loading import load_reward_model
        from agentprm.search.runner import SearchSpec, run_search

        ids = self._eval_ids()
        spec = SearchSpec(strategy, budget, max_new_tokens=self.cfg.max_new_tokens, seed=self.cfg.seed)
        model = None
        if rm is not None:
            model = load_reward_model("random" if rm == "random" else str(self.prm_dir(rm)))
        path = self._search_path(strategy, rm, budget)
        samples = self.eval_dir / f"samples_{budget}.jsonl" if strategy == "bon" else None
        command = (f"agentprm search --policy {self.policy_dir} --rm {rm if rm == 'random' else self.prm_dir(rm)} "
                   f"--strategy {strategy} --budget {budget} --env {self.cfg.env} --split test --n-tasks {len(ids)} "
                   f"--max-new-tokens {self.cfg.max_new_tokens} --seed {self.cfg.seed} --out {path}"
                   if rm else f"agentprm search --policy {self.policy_dir} --strategy greedy --env {self.cfg.env} "
                   f"--split test --n-tasks {len(ids)} --out {path}")
        with _bar(f"{strategy} {budget} {rm or ''}", total=len(ids)) as (bar, job):
            records = run_search(self._policy(), model, self._env_factory(), ids, spec, path, chunk_size=16,
                                 samples_path=samples, command=command + f"  # agentprm pipeline, {self.dir}/config.yaml",
                                 on_progress=lambda k, res: bar.update(job, advance=len(res)))
        vals = [t.reward if self._spec().metric == "reward" else float(t.success) for t in records]
        return f"{self._spec().metric} {sum(vals) / max(len(vals), 1):.3f} on {len(vals)} test tasks -> {path}"

    def _run_report(self) -> str:
        from agentprm.report.build import write_report

        return f"report -> {write_report(self.dir)}"


def _short(res: Any) -> str:
    d = asdict(res) if hasattr(res, "__dataclass_fields__") else {}
    keep = {k: v for k, v in d.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(keep.items())[:4])


class _bar:
    """A rich progress bar for one stage (total may be set later)."""

    def __init__(self, what: str, total: int | None = None):
        from agentprm.cli.common import progress

        self.p = progress()
        self.what, self.total = what, total

    def __enter__(self):
        self.p.__enter__()
        job = self.p.add_task(self.what, total=self.total, status="")
        return self.p, job

    def __exit__(self, *exc: object) -> None:
        self.p.__exit__(*exc)


def command_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
