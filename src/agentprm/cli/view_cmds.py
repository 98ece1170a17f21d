"""`agentprm view`: the local web viewer of run folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentprm.cli.root import app


@app.command()
def view(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run folders written by `agentprm pipeline` (e.g. runs/default).")
    ],
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind; the default serves this machine only.")] = "127.0.0.1",
    device: Annotated[str | None, typer.Option(help="Device for scoring with the run's PRMs (default: cpu).")] = None,
) -> None:
    """Browse run folders in a web browser: the run (stages, report, training curves), trajectories
    (filter, sort by any RM's score), one trajectory's steps with every PRM's score and every label
    as bars, and best-of-N tasks with each RM's ranking. Reads the folders as they are (a run in
    progress too); scores not stored in the folder are computed with the run's PRMs and cached."""
    from agentprm.view.app import serve

    serve(run_dirs, host=host, port=port, device=device)
