"""`agentprm view`: a local web app over run folders (FastAPI, server-rendered pages, no CDN).

Pages: the run (stages, report, training curves), the trajectories table, one trajectory (steps with
every RM's score and every label as bars), one best-of-n task (candidates and each RM's ranking).
Everything served ships in this package (templates/, static/); the run folders are only read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from agentprm.errors import UserError
from agentprm.view.data import Filters, Run, ScoreCache, table

HERE = Path(__file__).parent


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "·"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _sparkline(points: list[tuple[int, float]], width: int = 320, height: int = 60) -> str:
    """An inline SVG polyline of (step, value) points (no JS chart library)."""
    pts = [(s, v) for s, v in points if math.isfinite(v)]
    if not pts:
        return ""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 4) / ((x1 - x0) or 1)
    sy = (height - 4) / ((y1 - y0) or 1)
    coords = " ".join(f"{2 + (x - x0) * sx:.1f},{height - 2 - (y - y0) * sy:.1f}" for x, y in pts)
    mark = (
        f'<circle cx="{coords.split(",")[0]}" cy="{height / 2}" r="3" fill="currentColor"/>'
        if len(pts) == 1
        else f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{coords}"/>'
    )
    return f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">{mark}</svg>'


def create_app(run_dirs: Sequence[str | Path], device: str | None = None) -> FastAPI:
    for d in run_dirs:
        if not Path(d).is_dir():
            raise UserError(
                f"run folder {d} does not exist; give a folder written by `agentprm pipeline` (e.g. runs/default)"
            )
    scorer = ScoreCache(device)
    runs = [Run(i, d, scorer) for i, d in enumerate(run_dirs)]
    app = FastAPI(title="agentprm view", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runs = runs
    app.state.scorer = scorer
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["fmt"] = _fmt
    templates.env.globals["urlencode"] = urlencode

    def run_of(i: int) -> Run:
        if not 0 <= i < len(runs):
            raise HTTPException(404, f"no run {i}")
        return runs[i]

    def page(request: Request, name: str, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"runs": runs, **ctx})

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        if len(runs) == 1:
            return RedirectResponse("/run/0")
        return page(request, "index.html")

    @app.get("/run/{i}", response_class=HTMLResponse)
    def run_page(request: Request, i: int):
        run = run_of(i)
        curves = run.tensorboard_runs()
        for c in curves:
            c["svgs"] = {
                tag: (_sparkline(pts), pts[-1][1] if pts else None, len(pts)) for tag, pts in c["scalars"].items()
            }
        bon = [s for s in run.sources() if s.kind == "samples"]
        return page(
            request,
            "run.html",
            run=run,
            config=run.config(),
            stages=run.stages(),
            report=run.report_html(),
            curves=curves,
            sources=run.sources(),
            bon_sources=bon,
        )

    @app.get("/run/{i}/file/plots/{name}")
    def plot(i: int, name: str):
        run = run_of(i)
        try:
            path = run.paths.resolve(f"plots/{name}")
        except FileNotFoundError:
            raise HTTPException(404) from None
        if not path.is_file() or path.suffix.lower() not in (".png", ".svg"):
            raise HTTPException(404)
        return FileResponse(path)

    @app.get("/run/{i}/trajectories", response_class=HTMLResponse)
    def trajectories(
        request: Request,
        i: int,
        split: str = "",
        task: str = "",
        status: str = "",
        success: str = "",
        source: str = "",
        sort: str = "",
        desc: int = 1,
    ):
        run = run_of(i)
        f = Filters(split, task, status, success, source, sort, bool(desc))
        rows, info = table(run, f)
        return page(request, "trajectories.html", run=run, rows=rows, f=f, info=info, sources=run.sources())

    @app.get("/run/{i}/trajectory", response_class=HTMLResponse)
    def trajectory(request: Request, i: int, src: str, id: str):
        run = run_of(i)
        try:
            source = run.source(src)
            traj = run.trajectory(source, id)
        except (KeyError, FileNotFoundError):
            raise HTTPException(404, f"no trajectory {id!r} in {src!r}") from None
        view = run.trajectory_view(source, traj)
        return page(request, "trajectory.html", run=run, v=view)

    @app.get("/run/{i}/bon", response_class=HTMLResponse)
    def bon(request: Request, i: int, src: str, task: str = ""):
        run = run_of(i)
        try:
            source = run.source(src)
        except KeyError:
            raise HTTPException(404, f"no best-of-n samples {src!r}") from None
        if source.kind != "samples":
            raise HTTPException(404, f"{src!r} is not a best-of-n samples file")
        tasks = run.bon_tasks(source)
        detail = run.bon_task(source, task) if task else None
        summary = None
        if not task:  # every task's pick per RM: how often each RM picked a success
            summary = {}
            for t in tasks:
                d = run.bon_task(source, t)
                summary[t] = {
                    "any": d["any_success"],
                    "n": len(d["candidates"]),
                    "picked": {rm: x["picked_success"] for rm, x in d["rms"].items()},
                }
        return page(request, "bon.html", run=run, source=source, tasks=tasks, task=task, d=detail, summary=summary)

    return app


def serve(run_dirs: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8765, device: str | None = None) -> None:
    import uvicorn

    app = create_app(run_dirs, device)
    print(f"agentprm view: http://{host}:{port}/  ({len(run_dirs)} run folder(s); Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
