"""`agentprm envs | play | demos`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentprm.cli.common import progress, writable_path
from agentprm.cli.root import app
from agentprm.errors import UserError


@app.command()
def envs() -> None:
    """List the environments with their task counts per split and their metric."""
    from rich.console import Console
    from rich.table import Table

    from agentprm.envs import REGISTRY

    table = Table("env", "train", "test", "metric", "max rounds", "description")
    for name, spec in sorted(REGISTRY.items()):
        env = spec.make()
        table.add_row(
            name,
            str(len(env.task_ids("train"))),
            str(len(env.task_ids("test"))),
            spec.metric,
            str(env.max_rounds),
            spec.description,
        )
    Console().print(table)


@app.command()
def play(
    env: Annotated[str, typer.Option(help="Environment name (see `agentprm envs`).")] = "textcraft",
    task: Annotated[str, typer.Option(help="Task id, e.g. textcraft_12.")] = "",
    rm: Annotated[
        Path | None, typer.Option(help="A trained PRM dir: show its score of every step and the change.")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="A policy dir: the policy acts (greedy) instead of you.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Token cap of the policy's turns.")] = 128,
) -> None:
    """Play a task in the terminal: read the observation, type an action (`quit` to stop); with --policy
    the policy acts; with --rm every step shows the PRM's score and its change from the step before."""
    from agentprm.envs import make_env
    from agentprm.search.loading import load_policy, load_reward_model
    from agentprm.view.play import play_episode

    e = make_env(env)
    task_id = task or e.task_ids("test")[0]
    e.reset(task_id)  # before any output or model loading, so a bad task id ends in just the one error line
    scorer = load_reward_model(str(rm)) if rm is not None else None
    actor = load_policy(policy) if policy is not None else None

    def read(prompt: str) -> str | None:
        try:
            return input(prompt)
        except EOFError:
            return None

    play_episode(e, task_id, read, rm=scorer, policy=actor, max_new_tokens=max_new_tokens)


@app.command()
def demos(
    env: Annotated[str, typer.Option(help="Environment name (see `agentprm envs`).")] = "textcraft",
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    n: Annotated[int, typer.Option(help="Number of tasks to run the expert on.")] = 300,
    out: Annotated[Path, typer.Option(help="Output JSONL file (appended to: a rerun resumes).")] = Path("demos.jsonl"),
    seed: Annotated[int, typer.Option(help="Seed for the expert's choices.")] = 0,
    keep_failures: Annotated[
        bool | None,
        typer.Option(
            "--keep-failures/--successes-only",
            help="Write failed episodes too (each record has `success`). Default per env: TextCraft and "
            "WebShop keep them, BabyAI writes only successful demos.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite OUT instead of resuming.")] = False,
    thought_style: Annotated[
        str | None,
        typer.Option(
            help="Expert thoughts, where the env's expert offers styles (textcraft: full | brief | none; babyai: "
            "full | none; webshop: full | page, page clicking ids as the page shows them)."
        ),
    ] = None,
    renamed_copies: Annotated[
        int,
        typer.Option(
            help="After every successful demo, write K copies with the item words renamed "
            "(textcraft): teaches a from-scratch policy to read names instead of recalling them."
        ),
    ] = 0,
    workers: Annotated[
        int, typer.Option(help="Processes running the expert (BabyAI's planner is ~0.3 s a demo); same output.")
    ] = 1,
) -> None:
    """Run the env's expert on N tasks of a split and write the trajectories as JSONL."""
    from agentprm.envs.base import check_split, get_spec
    from agentprm.envs.demos import make_expert, run_expert

    get_spec(env)
    check_split(split)
    make_expert(env, thought_style)  # a bad style fails here, before any output
    if renamed_copies < 0:
        raise UserError("--renamed-copies must be 0 or more")
    if renamed_copies:
        get_spec(env).make_augmenter()  # an env without augmentation fails here
    writable_path(out)
    if force and out.exists():
        out.unlink()
    with progress() as bar:
        job = bar.add_task(f"demos {env}/{split}", total=None, status="")
        summary = run_expert(
            env,
            split,
            n,
            out,
            seed=seed,
            keep_failures=keep_failures,
            thought_style=thought_style,
            renamed_copies=renamed_copies,
            on_start=lambda total: bar.update(job, total=total),
            on_episode=lambda t, s: bar.update(job, advance=1, status=f"success {s.ok}/{s.tried}"),
            workers=workers,
        )
    if len(summary.groups) > 1:
        for g in sorted(summary.groups):
            print(f"  {g:<32} {summary.groups_ok[g]}/{summary.groups[g]}")
    skipped = f", {summary.skipped} already in {out}" if summary.skipped else ""
    print(f"expert success: {summary.ok}/{summary.tried} = {summary.success_rate:.1%}{skipped}; wrote {out}")
