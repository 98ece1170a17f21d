"""`agentprm pipeline [CONFIG]`: the main job, end to end in one resumable run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentprm.cli import app


@app.command()
def pipeline(
    config: Annotated[Path | None, typer.Argument(help="YAML of PipelineConfig fields (default: the embedded default).")] = None,
    env: Annotated[str | None, typer.Option(help="Environment (overrides the config): textcraft | babyai | webshop.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name: the folder runs/NAME (overrides the config).")] = None,
    runs: Annotated[Path, typer.Option(help="Parent folder of run folders.")] = Path("runs"),
    force: Annotated[bool, typer.Option(help="Redo every stage instead of skipping complete ones.")] = False,
) -> None:
    """Run demos -> sft -> collect -> label -> train PRMs (agentprm, pvm, orm) -> search -> report.

    Stages whose output is complete are skipped, so a rerun resumes. With no CONFIG this is the embedded
    default on TextCraft (a tiny policy trained from scratch; about 15 minutes on 2 CPU cores).
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
    Pipeline(cfg, runs, force=force).run()
