"""`agentprm view` on a run folder made by configs/smoke.yaml: the pages in a real browser (Selenium +
headless chromium), the scores they show against the PRM's own, filtering, sorting; `agentprm play`
with a PRM and a policy; the training curves' event files."""

from __future__ import annotations

import math
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """`agentprm pipeline configs/smoke.yaml` without its beam stages and the beta=0 ablation, with MC
    labels on one trajectory (together they take most of its time; beam results are read like any
    other trajectory file). The AgentPRM's value head is then set to
    random weights: the smoke PRMs learn nothing from all-failed episodes and score every step 0, which
    would make a check of the rendered values vacuous."""
    import torch
    from safetensors.torch import save_file

    from agentprm.pipeline import Pipeline, PipelineConfig

    root = tmp_path_factory.mktemp("runs")
    cfg = PipelineConfig.load(ROOT / "configs" / "smoke.yaml", beams=[], ablation_beta0=False, mc_trajectories=1)
    Pipeline(cfg, root=root, log=lambda _: None).run()
    run = root / cfg.name
    g = torch.Generator().manual_seed(0)
    head = run / "prm" / "agentprm" / "value_head.safetensors"
    hidden = cfg.sft.tiny.hidden_size
    save_file({"weight": torch.randn(1, hidden, generator=g), "bias": torch.tensor([0.25])}, str(head))
    return run


def _prm_scores(run: Path, rm: str, traj) -> list[float]:
    from agentprm.conversation import trajectory_messages
    from agentprm.prm.model import PRMScorer

    return PRMScorer.load(run / "prm" / rm).score([trajectory_messages(traj)])[0].scores


def _collected(run: Path):
    from agentprm.trajectory import read_trajectories

    return read_trajectories(run / "trajectories.jsonl")


# -- without a browser ---------------------------------------------------------------------------------


def test_pages_scores_labels_and_cache(smoke_run):
    from fastapi.testclient import TestClient

    from agentprm.labels.store import read_labels
    from agentprm.view.app import create_app
    from agentprm.view.data import Filters, table

    app = create_app([smoke_run])
    client = TestClient(app)
    assert client.get("/run/0").status_code == 200
    traj = _collected(smoke_run)[0]
    url = "/run/0/trajectory"
    params = {"src": "trajectories.jsonl", "id": traj.id}
    run = app.state.runs[0]
    view = run.trajectory_view(run.source("trajectories.jsonl"), traj)
    want = _prm_scores(smoke_run, "agentprm", traj)
    assert any(abs(v) > 1e-3 for v in want)
    got = [s.series["score:agentprm"] for s in view.steps]
    assert got == pytest.approx(want, abs=1e-5)
    td = read_labels(smoke_run / "labels" / "td-gae.jsonl")[traj.id].labels
    assert [s.series["label:td-gae"] for s in view.steps] == pytest.approx(td)
    assert "agentprm" in view.computed and sum(s.disagree for s in view.steps) >= 1

    # computed once per (PRM, file, trajectory): a second page view scores nothing
    calls = app.state.scorer.calls
    assert client.get(url, params=params).status_code == 200
    assert app.state.scorer.calls == calls
    # ...until the PRM's weights change
    head = smoke_run / "prm" / "agentprm" / "value_head.safetensors"
    data = head.read_bytes()
    head.write_bytes(data)  # same weights, new mtime: scored again, same values
    time.sleep(0.01)
    assert client.get(url, params=params).status_code == 200
    assert app.state.scorer.calls > calls

    # best-of-n candidates: the scores each RM's result file stores, no model call
    samples = "eval/textcraft/samples_2.jsonl"
    src = run.source(samples)
    cand = run.trajectories(src)[1]
    stored = run.stored_scores(src, cand)
    assert {"agentprm", "pvm", "orm", "mc", "random"} <= set(stored)
    import json

    rec = {
        json.loads(line)["task_id"]: json.loads(line)
        for line in (smoke_run / "eval/textcraft/random/bon_2.jsonl").read_text().splitlines()
    }[cand.task_id]
    assert stored["random"] == rec["meta"]["search"]["candidates"][cand.meta["sample_index"]]["scores"]
    r = client.get("/run/0/bon", params={"src": samples, "task": cand.task_id})
    assert r.status_code == 200 and "picked a success?" in r.text

    rows, info = table(run, Filters(split="train"))
    assert len(rows) == len(_collected(smoke_run)) and all(r.source.split == "train" for r in rows)
    rows, _ = table(run, Filters(sort="agentprm", desc=True))
    vals = [r.scores["agentprm"] for r in rows]
    assert None not in vals and vals == sorted(vals, reverse=True)
    assert client.get("/run/0/trajectory", params={"src": "nope.jsonl", "id": "x"}).status_code == 404
    assert client.get("/run/0/file/plots/../config.yaml").status_code == 404


def test_stage_table_shows_times_and_a_running_stage(smoke_run, tmp_path):
    from agentprm.view.paths import RunPaths
    from agentprm.view.stages import stage_table

    rows = {r["stage"]: r for r in stage_table(RunPaths(smoke_run))}
    assert rows["sft"]["status"] == "done" and rows["sft"]["seconds"] > 0
    assert rows["report"]["status"] == "done"
    # a run in progress: a stage started and not ended is running, later stages are pending
    run = tmp_path / "smoke"
    run.mkdir()
    shutil.copy(smoke_run / "config.yaml", run / "config.yaml")
    (run / "stages.jsonl").write_text(json_line({"stage": "demos", "event": "start", "time": time.time() - 5}))
    rows = {r["stage"]: r for r in stage_table(RunPaths(run))}
    assert rows["demos"]["status"] == "running" and rows["demos"]["seconds"] >= 5
    assert rows["sft"]["status"] == "pending"


def json_line(d) -> str:
    import json

    return json.dumps(d) + "\n"


def test_view_cli_rejects_a_missing_folder(tmp_path):
    from agentprm.cli import app

    res = CliRunner().invoke(app, ["view", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "does not exist" in str(res.exception)


# -- in a real browser ---------------------------------------------------------------------------------


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(smoke_run):
    import uvicorn

    from agentprm.view.app import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app([smoke_run]), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "viewer did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    th.join(timeout=10)


@pytest.fixture()
def browser():
    found = _chromium()
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("CI must run the browser test: .ci/run installs chromium and chromium-driver")
    if found is None:
        pytest.skip(
            "chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver; "
            ".ci/run installs them)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1300,1600"):
        opts.add_argument(a)
    opts.binary_location = found[0]
    drv = webdriver.Chrome(service=Service(found[1]), options=opts)
    drv.set_page_load_timeout(120)
    yield drv
    drv.quit()


def test_viewer_in_a_real_browser(smoke_run, served, browser, tmp_path):
    from urllib.parse import urlencode

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    shots = []

    def click_and_wait(selector: str) -> None:
        """Click, then wait until the old page is gone (else the old rows may still be read)."""
        old = browser.find_element(By.ID, "trajectories")
        browser.find_element(By.CSS_SELECTOR, selector).click()
        WebDriverWait(browser, 120).until(EC.staleness_of(old))

    def shot(name: str) -> None:
        path = tmp_path / f"{name}.png"
        browser.save_screenshot(str(path))
        shots.append(path)

    # the run: stages with their status, training curves from the event files, the report's tables and plots
    browser.get(f"{served}/run/0")
    assert browser.find_element(By.ID, "page-run")
    stages = {
        r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[1].text
        for r in browser.find_elements(By.CSS_SELECTOR, "#stages tr")[1:]
    }
    assert stages["sft"] == "done" and stages["search bon@2 agentprm"] == "done"
    logdirs = {e.get_attribute("data-logdir") for e in browser.find_elements(By.CSS_SELECTOR, ".curves")}
    assert {"policy/tb", "prm/agentprm/tb"} <= logdirs
    tags = {e.get_attribute("data-tag") for e in browser.find_elements(By.CSS_SELECTOR, ".curve")}
    assert {"sft/loss", "sft/lr", "sft/tokens_per_s", "prm/loss", "prm/l_q", "prm/l_a"} <= tags
    imgs = browser.find_elements(By.CSS_SELECTOR, ".report img")
    assert imgs and all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in imgs)
    shot("run")

    # trajectories: every file's rows; filtering by task and by split
    trajs = _collected(smoke_run)
    browser.get(f"{served}/run/0/trajectories")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.traj-row")
    assert len(rows) == 4 + 2 + 4  # collected 2x2, greedy 2 test tasks, best-of-2 candidates
    task = trajs[0].task_id
    Select(browser.find_element(By.NAME, "task")).select_by_visible_text(task)
    click_and_wait("#apply")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.traj-row")
    assert len(rows) == sum(t.task_id == task for t in trajs) and {r.get_attribute("data-task") for r in rows} == {task}
    Select(browser.find_element(By.NAME, "task")).select_by_visible_text("all")
    Select(browser.find_element(By.NAME, "split")).select_by_visible_text("test")
    click_and_wait("#apply")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.traj-row")
    assert len(rows) == 6 and {r.get_attribute("data-split") for r in rows} == {"test"}
    # sorting by AgentPRM's score (computed for the rows that lack one)
    click_and_wait('a.sort[data-sort="agentprm"]')
    cells = browser.find_elements(By.CSS_SELECTOR, 'tr.traj-row td[data-rm="agentprm"]')
    vals = [float(c.text) for c in cells]
    assert len(vals) == 6 and vals == sorted(vals, reverse=True)
    shot("trajectories")

    # one trajectory: each step's AgentPRM bar shows the PRM's own score of that step
    traj = trajs[0]
    browser.get(f"{served}/run/0/trajectory?" + urlencode({"src": "trajectories.jsonl", "id": traj.id}))
    want = _prm_scores(smoke_run, "agentprm", traj)
    bars = browser.find_elements(By.CSS_SELECTOR, '.bar-row[data-series="score:agentprm"]')
    assert len(bars) == traj.num_steps
    for bar in bars:
        t = int(bar.get_attribute("data-t"))
        assert float(bar.get_attribute("data-value")) == pytest.approx(want[t], abs=1e-5)
        assert bar.find_element(By.CSS_SELECTOR, ".bar-val").text == f"{want[t]:.4f}"
        width = bar.find_element(By.CSS_SELECTOR, ".fill").value_of_css_property("width")
        assert math.isfinite(float(width.rstrip("px")))
    series = {b.get_attribute("data-series") for b in browser.find_elements(By.CSS_SELECTOR, ".bar-row")}
    assert {"score:pvm", "score:orm", "score:mc", "label:td-gae", "label:mc", "label:pvm"} <= series
    assert browser.find_elements(By.CSS_SELECTOR, ".step.disagree")
    shot("trajectory")

    # one best-of-n task: its candidates, each RM's ranking and pick
    cand = next(t for t in _samples(smoke_run))
    browser.get(f"{served}/run/0/bon?" + urlencode({"src": "eval/textcraft/samples_2.jsonl", "task": cand.task_id}))
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.cand")) == 2
    picks = browser.find_elements(By.CSS_SELECTOR, "td.picked")
    assert {p.get_attribute("data-rm") for p in picks} >= {"agentprm", "pvm", "orm", "random"}
    shot("bon")
    for p in shots:
        print(f"screenshot: {p}")
    assert all(p.stat().st_size > 10_000 for p in shots)


def _samples(run: Path):
    from agentprm.trajectory import read_trajectories

    return read_trajectories(run / "eval" / "textcraft" / "samples_2.jsonl")


# -- play ----------------------------------------------------------------------------------------------


def test_play_shows_the_prm_score_and_its_change(smoke_run):
    from agentprm.cli import app
    from agentprm.trajectory import Step, Trajectory

    rm = smoke_run / "prm" / "agentprm"
    task = _samples(smoke_run)[0].task_id
    res = CliRunner().invoke(
        app,
        ["play", "--env", "textcraft", "--task", task, "--rm", str(rm)],
        input="get 1 oak logs\ncraft 4 oak planks using 1 oak logs\nquit\n",
    )
    assert res.exit_code == 0, res.output
    # (piped input is not echoed, so a score follows its prompt on the same line)
    lines = [ln[ln.index("PRM score of step") :] for ln in res.output.splitlines() if "PRM score of step" in ln]
    assert len(lines) == 2 and "change" not in lines[0] and "change" in lines[1]
    # the printed scores are the PRM's scores of that conversation
    from agentprm.envs import make_env

    env = make_env("textcraft")
    first = env.reset(task)
    traj = Trajectory.begin(env, task, first, id="x")
    obs = first
    for t, a in enumerate(["get 1 oak logs", "craft 4 oak planks using 1 oak logs"]):
        traj.steps.append(Step(t=t, observation=obs, output=a, action=env.parse_action(a)))
        obs = env.step(traj.steps[-1].action).observation
    want = _prm_scores(smoke_run, "agentprm", traj)
    assert lines[0].endswith(f"{want[0]:.4f}")
    assert lines[1] == f"PRM score of step 1: {want[1]:.4f} (change {want[1] - want[0]:+.4f} from step 0)"
    assert "stopped" in res.output

    # with --policy the policy acts until the episode ends, every step scored
    res = CliRunner().invoke(
        app,
        [
            "play",
            "--env",
            "textcraft",
            "--task",
            task,
            "--rm",
            str(rm),
            "--policy",
            str(smoke_run / "policy"),
            "--max-new-tokens",
            "16",
        ],
    )
    assert res.exit_code == 0, res.output
    n_policy = res.output.count("policy> ")
    assert n_policy >= 1 and res.output.count("PRM score of step") == n_policy


def test_play_bad_task_is_one_line():
    from agentprm.cli import app

    res = CliRunner().invoke(app, ["play", "--env", "textcraft", "--task", "textcraft_nope"])
    assert res.exit_code != 0


# -- training curves -----------------------------------------------------------------------------------


def test_tracker_writes_readable_event_files(tmp_path):
    from agentprm.errors import UserError
    from agentprm.tracking import Tracker, event_dirs, parse_report_to, read_scalars

    with Tracker(tmp_path / "a" / "tb", "tensorboard") as tr:
        for step in range(1, 6):
            tr.log({"x/loss": 1.0 / step, "x/lr": 0.5}, step)
    got = read_scalars(tmp_path / "a" / "tb")
    assert [s for s, _ in got["x/loss"]] == [1, 2, 3, 4, 5]
    assert [v for _, v in got["x/loss"]] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert event_dirs(tmp_path) == [tmp_path / "a" / "tb"]
    with Tracker(tmp_path / "b", "none") as tr:  # "none": nothing written
        tr.log({"x": 1.0}, 1)
    assert not (tmp_path / "b").exists()
    assert parse_report_to("tensorboard,none") == ["tensorboard"]
    with pytest.raises(UserError, match="unknown --report-to"):
        parse_report_to("mlflow")
    try:
        import wandb  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pip install wandb"):
            Tracker(tmp_path / "c", "wandb")


def test_sft_and_prm_training_write_curves(smoke_run):
    from agentprm.tracking import read_scalars

    sft = read_scalars(smoke_run / "policy" / "tb")
    assert len(sft["sft/loss"]) == 4 and all(math.isfinite(v) for _, v in sft["sft/loss"])  # max_steps: 4
    assert all(v > 0 for _, v in sft["sft/tokens_per_s"])
    prm = read_scalars(smoke_run / "prm" / "pvm" / "tb")
    assert {"prm/loss", "prm/l_q", "prm/l_a", "prm/lr", "prm/tokens_per_s"} <= set(prm)


def test_a_run_in_progress_and_several_runs(smoke_run, tmp_path):
    """A folder the pipeline is still writing (collect half done, its last line torn mid-write) is
    shown as it is; several run folders get an index page."""
    from fastapi.testclient import TestClient

    from agentprm.view.app import create_app
    from agentprm.view.data import Filters, table

    run = tmp_path / "smoke"
    run.mkdir()
    shutil.copy(smoke_run / "config.yaml", run / "config.yaml")
    lines = (smoke_run / "trajectories.jsonl").read_text().splitlines()
    (run / "trajectories.jsonl").write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:100])
    (run / "stages.jsonl").write_text(json_line({"stage": "collect", "event": "start", "time": time.time()}))
    app = create_app([smoke_run, run])
    client = TestClient(app)
    index = client.get("/")
    assert index.status_code == 200 and index.text.count('href="/run/') == 2
    page = client.get("/run/1")
    assert page.status_code == 200 and "running" in page.text and "No report.md yet" in page.text
    rows, _ = table(app.state.runs[1], Filters())
    assert len(rows) == 2
    assert client.get("/run/1/trajectories").text.count('class="traj-row"') == 2
