"""`agentprm search | report`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from agentprm.cli.common import MaxRoundsOpt, check_max_rounds, progress, writable_path
from agentprm.cli.root import app


def _command_line(ctx: typer.Context, name: str) -> str:
    """The invocation with every option spelled out (defaults too), so a record says exactly what ran."""
    parts = ["agentprm", name]
    for key, val in ctx.params.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(val, bool):
            parts.append(flag if val else "--no-" + flag[2:])
        elif val is not None:
            parts += [flag, shlex.quote(str(val))]
    return " ".join(parts)


@app.command()
def search(
    ctx: typer.Context,
    policy: Annotated[Path, typer.Option(help="Policy directory (an HF model dir, e.g. runs/NAME/policy).")],
    out: Annotated[
        Path, typer.Option(help="Output JSONL, one chosen trajectory a task (appended to: a rerun resumes).")
    ],
    rm: Annotated[
        str,
        typer.Option(
            help="Reward model: a PRM directory (runs/NAME/prm/agentprm), a PRM server URL (http://HOST:PORT from `agentprm serve-prm`), or random[:SEED]."
        ),
    ] = "random",
    strategy: Annotated[str, typer.Option(help="greedy | bon | beam.")] = "bon",
    budget: Annotated[
        str, typer.Option(help="bon: N samples (e.g. 16); beam: NxM (e.g. 4x4); greedy: ignored.")
    ] = "16",
    env: Annotated[str, typer.Option(help="Environment name (see `agentprm envs`).")] = "textcraft",
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    n: Annotated[int, typer.Option(help="Number of tasks (0: the whole split).")] = 0,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (default: 0.7 for bon/beam, as the paper).")
    ] = None,
    aggregation: Annotated[
        str, typer.Option(help="bon: how step scores make a trajectory score: last (paper) | min | mean | product.")
    ] = "last",
    max_new_tokens: Annotated[int, typer.Option(help="Token cap of one assistant turn.")] = 128,
    max_rounds: MaxRoundsOpt = 0,
    seed: Annotated[
        int, typer.Option(help="Sampling seed (each episode derives its own: results do not depend on batching).")
    ] = 0,
    root_copies: Annotated[str, typer.Option(help="beam: M (paper: C = [s_0]·M, M·M actions at the root) or 1.")] = "M",
    dedup: Annotated[
        bool, typer.Option(help="beam: drop candidates whose action history duplicates another's.")
    ] = False,
    finished: Annotated[str, typer.Option(help="beam: compete (ended paths keep their slot) or reserve.")] = "compete",
    samples: Annotated[
        Path | None, typer.Option(help="bon: JSONL of sampled candidates, reused by later runs (other RMs, smaller N).")
    ] = None,
    chunk: Annotated[int, typer.Option(help="Tasks searched together in one batched search.")] = 32,
    force: Annotated[bool, typer.Option(help="Overwrite OUT instead of resuming.")] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Run on Ray: `auto` (a running local cluster, else start one) or a cluster address; each actor holds a policy and RM replica, one --chunk of tasks a shard. Needs the `ray` extra."
        ),
    ] = None,
    ray_workers: Annotated[int, typer.Option(help="--ray: actors (0: one per cluster CPU).")] = 0,
    backend: Annotated[
        str, typer.Option(help="Generation backend: hf (default) | vllm (GPU; the `vllm` extra).")
    ] = "hf",
) -> None:
    """Search the tasks of a split with a policy and a reward model; write the chosen trajectory per task."""
    from agentprm.envs import get_spec
    from agentprm.envs.base import check_split
    from agentprm.errors import UserError
    from agentprm.search.best_of_n import AGGREGATIONS
    from agentprm.search.loading import load_policy, load_reward_model
    from agentprm.search.runner import SearchSpec, run_search

    spec_env = get_spec(env)
    check_split(split)
    if aggregation not in AGGREGATIONS:
        raise UserError(f"unknown --aggregation {aggregation!r}; choose one of: {', '.join(AGGREGATIONS)}")
    if root_copies not in ("M", "1") or finished not in ("compete", "reserve"):
        raise UserError("--root-copies takes M or 1; --finished takes compete or reserve")
    if n < 0:
        raise UserError("--n must be 0 (all) or positive")
    spec = SearchSpec(strategy, budget, temperature, aggregation, max_new_tokens, seed, root_copies, dedup, finished)
    writable_path(out)
    if force and out.exists():
        out.unlink()
    if ray and samples is not None:
        raise UserError("--samples is not supported with --ray yet; drop one of them")
    check_max_rounds(max_rounds)
    rm_spec = None if strategy == "greedy" else rm  # what the records name as the RM
    reward_model, pol = None, None
    if ray:  # the workers load the policy and RM; the driver only checks that they are there
        from agentprm.policy.hf import check_policy_dir

        check_policy_dir(policy)
        if strategy != "greedy" and not (
            rm == "random" or rm.startswith(("random:", "http://", "https://")) or Path(rm).is_dir()
        ):
            raise UserError(
                f"reward model directory {rm} does not exist; give --rm a PRM dir (e.g. runs/NAME/prm/agentprm) or random"
            )
    else:
        reward_model = None if strategy == "greedy" else load_reward_model(rm)
        pol = load_policy(policy) if backend == "hf" else load_policy(policy, backend)
        from agentprm.policy.hf import check_trained_env

        check_trained_env(getattr(pol, "meta", {}), policy, env)
    task_ids = spec_env.make().task_ids(split, n or None)
    command = _command_line(ctx, "search")
    ok = total = 0
    with progress() as bar:
        job = bar.add_task(f"{strategy} {spec.budget} {env}/{split}", total=len(task_ids), status="")

        def advance(k: int, results: list) -> None:
            nonlocal ok, total
            ok += sum(r.success for r in results)
            total += len(results)
            bar.update(job, advance=k, status=f"success {ok}/{total}")

        done_before = len(task_ids)
        extra: dict[str, Any] = {"policy": str(policy), "rm": rm_spec, "env": env, "split": split}
        if max_rounds:
            extra["max_rounds"] = max_rounds
        if ray:
            from agentprm.scale.ray_jobs import RayOptions, SearchStage, search_on_ray

            fields = (
                "strategy",
                "budget",
                "temperature",
                "aggregation",
                "max_new_tokens",
                "seed",
                "root_copies",
                "dedup",
                "finished",
                "prm_call",
            )
            stage = SearchStage(
                policy=str(policy),
                env=env,
                backend=backend,
                max_rounds=max_rounds,
                rm=rm_spec,
                spec={k: getattr(spec, k) for k in fields},
                config={**spec.to_dict(), **extra},
                command=command,
            )
            records = search_on_ray(
                stage,
                task_ids,
                out,
                RayOptions(address=ray, workers=ray_workers),
                chunk_size=chunk,
                on_progress=advance,
            )
        else:
            assert pol is not None  # loaded above when not on Ray
            records = run_search(
                pol,
                reward_model,
                spec_env.maker(max_rounds),
                task_ids,
                spec,
                out,
                chunk_size=chunk,
                samples_path=samples,
                command=command,
                extra_config=extra,
                on_progress=advance,
            )
        done_before -= total
        bar.update(job, completed=len(task_ids))
    rate = sum(t.success for t in records) / len(records) if records else float("nan")
    resumed = f" ({done_before} from an earlier run)" if done_before else ""
    print(
        f"{strategy} {spec.budget}: success {sum(t.success for t in records)}/{len(records)} = {rate:.1%}{resumed}; wrote {out}"
    )


@app.command()
def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="Run folder(s) (runs/NAME) with eval/<env>/... search results; one env a folder."),
    ],
    out: Annotated[
        Path | None, typer.Option(help="Folder for the report (default: the run folder; needed for several).")
    ] = None,
) -> None:
    """Write report.md and plots/*.png (the paper's tables and plots) from one run folder, or one combined
    report over several (e.g. runs/default runs/default-babyai runs/default-webshop --out runs/report)."""
    from agentprm.errors import UserError
    from agentprm.report import write_report

    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise UserError(
                f"run folder {run_dir} does not exist; give the folder a pipeline or search wrote (runs/NAME)"
            )
        if not (run_dir / "eval").is_dir():
            raise UserError(
                f"{run_dir} has no eval/ folder; run `agentprm search --out {run_dir}/eval/<env>/...` first"
            )
    if out is not None:
        writable_path(out / "report.md")
    print(f"wrote {write_report(run_dirs, out)}")
