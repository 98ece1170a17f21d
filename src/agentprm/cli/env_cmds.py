"""`agentprm envs | play | demos`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from agentprm.cli import app
from agentprm.cli.common import progress, writable_path


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
) -> None:
    """Play a task yourself in the terminal: read the observation, type an action (`quit` to stop)."""
    from agentprm.envs import make_env

    e = make_env(env)
    task_id = task or e.task_ids("test")[0]
    first = e.reset(task_id)  # before any output, so a bad task id ends in just the one error line
    print(e.system_prompt, "\n")
    print(first)
    for rnd in range(1, e.max_rounds + 1):
        try:
            action = input(f"\n[{rnd}/{e.max_rounds}] action> ").strip()
        except EOFError:
            break
        if action in ("quit", "exit"):
            break
        res = e.step(e.parse_action(action))
        print(res.observation)
        print(f"reward={res.reward} done={res.done}")
        if res.done:
            print("success" if e.is_success(res.reward, res.done) else "episode over")
            return
    print("no more rounds" if rnd == e.max_rounds else "stopped")


@app.command()
def demos(
    env: Annotated[str, typer.Option(help="Environment name (see `agentprm envs`).")] = "textcraft",
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    n: Annotated[int, typer.Option(help="Number of tasks to run the expert on.")] = 300,
    out: Annotated[Path, typer.Option(help="Output JSONL file (appended to: a rerun resumes).")] = Path("demos.jsonl"),
    seed: Annotated[int, typer.Option(help="Seed for the expert's choices.")] = 0,
    keep_failures: Annotated[
        bool,
        typer.Option(
            "--keep-failures/--successes-only",
            help="Write failed episodes too (each record has `success`; SFT readers filter on it).",
        ),
    ] = True,
    force: Annotated[bool, typer.Option(help="Overwrite OUT instead of resuming.")] = False,
    thought_style: Annotated[
        str | None,
        typer.Option(help="Expert thoughts, where the env's expert offers styles (textcraft: full | brief)."),
    ] = None,
) -> None:
    """Run the env's expert on N tasks of a split and write the trajectories as JSONL."""
    from agentprm.envs import get_spec
    from agentprm.envs.base import check_split
    from agentprm.errors import UserError
    from agentprm.rollout_io import done_task_ids
    from agentprm.trajectory import JsonlWriter

    spec = get_spec(env)
    check_split(split)
    if n < 1:
        raise UserError("--n must be at least 1")
    writable_path(out)
    if force and out.exists():
        out.unlink()
    e = spec.make()
    expert = spec.make_expert()
    if thought_style is not None:
        import functools
        import inspect

        # An expert that offers styles lists them in its module and takes `thought_style`.
        styles = getattr(inspect.getmodule(expert), "THOUGHT_STYLES", ())
        if not styles:
            raise UserError(f"the {env} expert has one thought style; drop --thought-style")
        if thought_style not in styles:
            raise UserError(f"unknown thought style {thought_style!r}; choose one of {', '.join(styles)}")
        expert = functools.partial(expert, thought_style=thought_style)
    task_ids = e.task_ids(split, n)
    done = done_task_ids(out)
    todo = [t for t in task_ids if t not in done]
    tried = ok = 0
    groups: Counter[str] = Counter()
    groups_ok: Counter[str] = Counter()
    with JsonlWriter(out) as writer, progress() as bar:
        job = bar.add_task(f"demos {env}/{split}", total=len(todo), status="")
        for task_id in todo:
            traj = expert(e, task_id, seed)
            tried += 1
            ok += traj.success
            group = str(traj.meta.get("group", ""))
            groups[group] += 1
            groups_ok[group] += traj.success
            if traj.success or keep_failures:
                writer.write(traj)
            bar.update(job, advance=1, status=f"success {ok}/{tried}")
    if len(groups) > 1:
        for g in sorted(groups):
            print(f"  {g:<32} {groups_ok[g]}/{groups[g]}")
    skipped = f", {len(task_ids) - len(todo)} already in {out}" if len(todo) < len(task_ids) else ""
    rate = ok / tried if tried else float("nan")
    print(f"expert success: {ok}/{tried} = {rate:.1%}{skipped}; wrote {out}")
