"""`agentprm pipeline [CONFIG]`: the main job, end to end in one resumable run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentprm.cli.root import app


@app.command()
def pipeline(
    config: Annotated[
        Path | None, typer.Argument(help="YAML of PipelineConfig fields (default: the embedded default).")
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            help="Environment (overrides the config): babyai (the default) | textcraft | webshop | math; each with its embedded default sizes."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Run name: the folder runs/NAME (overrides the config).")] = None,
    runs: Annotated[Path, typer.Option(help="Parent folder of run folders.")] = Path("runs"),
    force: Annotated[
        bool, typer.Option(help="Redo every stage: each one's old output is removed first (samples included).")
    ] = False,
    redo: Annotated[
        list[str] | None,
        typer.Option(
            help="Redo this stage and every stage that reads it (repeatable): a stage name as printed (e.g. 'train-prm orm') or its first word (demos, sft, collect, label, train-prm, search)."
        ),
    ] = None,
) -> None:
    """Run demos -> sft -> collect -> label -> train PRMs (agentprm, pvm, orm) -> search -> report.

    Stages whose output is complete and was made under the current settings are skipped, so a rerun resumes;
    a stage whose settings changed (docs/pipeline.md: which field invalidates which stage) is removed and redone.
    With no CONFIG this is the embedded default: BabyAI, a tiny policy trained from scratch, 50 test tasks, on
    2 CPU cores (`--env` picks another env's embedded default).
    """
    from agentprm.cli.common import writable_dir
    from agentprm.envs import get_spec
    from agentprm.pipeline import Pipeline, PipelineConfig

    cfg = PipelineConfig.load(config, env=env)
    if name is None and config is None and env is not None:
        cfg.name = f"default-{env}"
    elif name is not None:
        cfg.name = name
    get_spec(cfg.env)
    writable_dir(runs / cfg.name, "--runs")
    Pipeline(cfg, runs, force=force, redo=redo or ()).run()
