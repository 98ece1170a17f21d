"""`agentprm report` on a small synthetic run folder made by real searches over the scripted env."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agentprm.cli import app
from agentprm.errors import UserError
from agentprm.labels.store import LabelRecord
from agentprm.prm.evaluate import auroc as auc
from agentprm.report import RunSet, write_report
from agentprm.search import RandomRewardModel
from agentprm.search.runner import SearchSpec, run_search
from agentprm.testing import ScriptedRewardModel
from agentprm.trajectory import JsonlWriter, read_trajectories
from tests.cli_helpers import run_main
from tests.search_fakes import ORACLE, PROGRESS, KeyedPolicy, make_env

TASKS = [f"line_{1 + i % 4}_{i}" for i in range(6)]


def _named(rm, name):
    rm = ScriptedRewardModel(rm.fn) if isinstance(rm, ScriptedRewardModel) else rm
    rm.name = name
    return rm


def build_run(root: Path, env: str = "scripted", p_right: float = 0.4) -> Path:
    """A run folder like the pipeline's: greedy, every RM's best-of-8 and beam 2x2 on `env`, TD and MC labels."""
    ev = root / "eval" / env
    policy = KeyedPolicy(p_right)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(f"env: {env}\n")
    run_search(
        policy,
        None,
        make_env,
        TASKS,
        SearchSpec("greedy", "1"),
        ev / "greedy.jsonl",
        command=f"agentprm search --env {env} --strategy greedy",
    )
    rms = {
        "agentprm": _named(PROGRESS, "agentprm"),
        "pvm": _named(ORACLE, "pvm"),
        "orm": RandomRewardModel(1, "orm"),
        "mc": _named(ORACLE, "mc"),
        "agentprm-beta0": RandomRewardModel(2, "agentprm-beta0"),
    }
    samples = ev / "samples.jsonl.tmp"
    for name, rm in rms.items():
        run_search(
            policy,
            rm,
            make_env,
            TASKS,
            SearchSpec("bon", "8"),
            ev / name / "bon_8.jsonl",
            samples_path=samples,
            command=f"agentprm search --env {env} --rm {name} --strategy bon --budget 8",
        )
        run_search(policy, rm, make_env, TASKS, SearchSpec("beam", "2x2"), ev / name / "beam_2x2.jsonl", chunk_size=4)
    labels = root / "labels"
    with JsonlWriter(labels / "td-gae.jsonl") as w:
        for i, t in enumerate(TASKS):
            w.write(LabelRecord(f"t{i}", t, "td-gae", [0.0], 100, env=env).to_dict())
    with JsonlWriter(labels / "mc.jsonl") as w:
        for i, t in enumerate(TASKS):
            w.write(LabelRecord(f"m{i}", t, "mc", [0.0], 250, env=env).to_dict())
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two run folders, one env each (as `agentprm pipeline --env ...` writes them), with different policies."""
    base = tmp_path_factory.mktemp("two")
    return build_run(base / "default", "scripted", 0.4), build_run(base / "default-b", "scripted-b", 0.7)


def test_report_has_every_section_plots_and_lists_what_was_not_run(run_dir):
    report = write_report(run_dir).read_text()
    for heading in [
        "(a) Table 1",
        "(b) Best-of-N",
        "(c) Compute-efficiency",
        "(d) Table 3",
        "(e) PRM scores",
        "(f) Ablation",
        "claims",
        "Not run",
    ]:
        assert heading in report
    assert (run_dir / "plots" / "bon_scripted.png").stat().st_size > 1000
    assert (run_dir / "plots" / "scores_scripted.png").stat().st_size > 1000
    assert "orm beam @8x8" in report and "pvm beam @4x4" in report  # the paper's budgets we did not run
    assert (
        "agentprm search --env scripted --rm agentprm --strategy bon --budget 8" in report
    )  # figures name their command
    assert "label tokens" in report and "2.5×" in report  # MC spent 250 tokens a trajectory, TD 100


def test_table1_numbers_are_the_files_success_rates(run_dir):
    report = write_report(run_dir).read_text()
    recs = read_trajectories(run_dir / "eval" / "scripted" / "pvm" / "beam_2x2.jsonl")
    expected = 100 * sum(t.success for t in recs) / len(recs)
    row = next(ln for ln in report.splitlines() if ln.startswith("| pvm |"))
    assert f"{expected:.1f}" in row
    greedy = read_trajectories(run_dir / "eval" / "scripted" / "greedy.jsonl")
    g_row = next(ln for ln in report.splitlines() if ln.startswith("| SFT (greedy) |"))
    assert f"{100 * sum(t.success for t in greedy) / len(greedy):.1f}" in g_row


def test_shared_samples_make_oracle_identical_across_rms(run_dir):
    curves = {}
    for rm in ("agentprm", "pvm", "orm"):
        recs = read_trajectories(run_dir / "eval" / "scripted" / rm / "bon_8.jsonl")
        curves[rm] = [[c["success"] for c in t.meta["search"]["candidates"]] for t in recs]
    assert curves["agentprm"] == curves["pvm"] == curves["orm"]


def test_empty_run_folder_reports_everything_not_run(tmp_path):
    (tmp_path / "eval").mkdir()
    report = write_report(tmp_path).read_text()
    assert report.count("not run") >= 5
    assert not re.search(r"\| agentprm \| \d", report)


def test_auc():
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.1], [0.9]) == 0.0
    assert auc([0.5, 0.5], [0.5]) == 0.5


def test_cli_report_and_errors(run_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 0 and "report.md" in res.output
    code, err = run_main(["report", str(tmp_path / "nope")])
    assert code == 2 and err.count("\n") == 1 and str(tmp_path / "nope") in err
    code, err = run_main(
        [
            "search",
            "--policy",
            str(tmp_path),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--strategy",
            "beam",
            "--budget",
            "4y4",
        ]
    )
    assert (
        code == 2
        and err == "agentprm: error: bad --budget '4y4': give N for bon (e.g. 16) or NxM for beam (e.g. 4x4)\n"
    )


def test_cli_search_writes_resumes_and_records_its_command(tmp_path, monkeypatch):
    import agentprm.search.loading as loading
    from agentprm.envs import REGISTRY, EnvSpec

    monkeypatch.setitem(REGISTRY, "scripted", EnvSpec("scripted", "agentprm.testing.fakes:ScriptedEnv", "test env"))
    monkeypatch.setattr(loading, "load_policy", lambda path: KeyedPolicy(0.5))
    out = tmp_path / "eval" / "scripted" / "random" / "bon_4.jsonl"
    args = [
        "search",
        "--policy",
        str(tmp_path),
        "--rm",
        "random:3",
        "--strategy",
        "bon",
        "--budget",
        "4",
        "--env",
        "scripted",
        "--out",
        str(out),
        "--chunk",
        "3",
        "--samples",
        str(tmp_path / "s.jsonl"),
    ]
    runner = CliRunner()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = read_trajectories(out)
    assert len(recs) == 4 and all(len(t.meta["search"]["candidates"]) == 4 for t in recs)  # ScriptedEnv: 4 test tasks
    assert "--budget 4" in recs[0].meta["search"]["command"] and recs[0].meta["search"]["rm"] == "random"
    assert len(read_trajectories(tmp_path / "s.jsonl")) == 16
    res = runner.invoke(app, args)  # everything done: nothing re-searched, nothing re-sampled
    assert res.exit_code == 0 and len(read_trajectories(out)) == 4
    assert "4 from an earlier run" in res.output
    assert len(read_trajectories(tmp_path / "s.jsonl")) == 16


# -- several run folders, one report -------------------------------------------------------------------


def _row(report: str, section: str, first_cell: str) -> list[str]:
    """The cells of the first table row starting with `first_cell` after the heading `section`."""
    tail = report[report.index(section) :]
    line = next(ln for ln in tail.splitlines() if ln.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_two_run_folders_make_one_report_with_both_envs_and_their_average(two_runs, tmp_path):
    from agentprm.report.build import curves

    a, b = two_runs
    out = tmp_path / "report"
    report = write_report([a, b], out).read_text()
    assert not (a / "report.md").exists() and not (b / "report.md").exists()  # written to --out only
    table1 = report[report.index("(a) Table 1") : report.index("(b) Best-of-N")]
    assert "### scripted\n" in table1 and "### scripted-b\n" in table1
    for env in ("scripted", "scripted-b"):
        assert (out / "plots" / f"bon_{env}.png").stat().st_size > 1000
    assert (out / "plots" / "bon_average.png").stat().st_size > 1000
    # each env's numbers come from its own folder, named with its config and commands
    assert (
        f"run folder `{a}`, config `{a / 'config.yaml'}`" in report
        and f"run folder `{b}`, config `{b / 'config.yaml'}`" in report
    )
    assert "agentprm search --env scripted-b --rm pvm --strategy bon --budget 8" in report
    # the averaged curve is the mean of the two envs' curves at every budget
    ca = {p.n: 100 * p.success for p in curves(RunSet.scan([a]), "scripted")["agentprm"][1]}
    cb = {p.n: 100 * p.success for p in curves(RunSet.scan([b]), "scripted-b")["agentprm"][1]}
    assert ca != cb  # different policies: the average is not either env's curve
    avg = _row(report, "### average over envs", "agentprm")[1:]
    assert avg == [f"{(ca[n] + cb[n]) / 2:.1f}" for n in sorted(ca)]
    # efficiency on the averaged curve and the mean of per-env ratios
    eff = report[report.index("(c) Compute-efficiency") : report.index("(d) Table 3")]
    assert "### average over envs" in eff and "### mean of the per-env ratios" in eff
    # the claims name each env, with the numbers they rest on
    claims = report[report.index("## The paper's claims") :]
    for env in ("scripted", "scripted-b"):
        assert re.search(rf"{re.escape(env)}: (holds|does not hold|not separated)", claims)
    assert "mean over envs" in claims and "(paper: ~8×)" in claims


def test_claims_verdicts_follow_the_numbers(two_runs):
    from agentprm.report.build import Check, Claim

    assert Claim("x", "r", [], ["no data"]).verdict == "not measured"
    c = Claim("x", "r", [Check("a", True, "1 > 0"), Check("b", False, "0 > 1"), Check("b", True, "2 > 1")], [])
    assert c.verdict == "does not hold" and c.per_env() == {"a": "holds", "b": "does not hold"}
    assert c.per_env_text() == "a: holds; b: does not hold"


def test_table3_shows_both_mc_prms_and_section_g_their_loss(run_dir, tmp_path):
    """Table 3 has a row for the MC PRM without L_A (`mc`) and one with it (`mc-la`), both costed with the one
    MC labelling's tokens; (g) lists each PRM's objective, beta, mc_advantage_loss and steps."""
    import json

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    shutil.copytree(run / "eval" / "scripted" / "orm", run / "eval" / "scripted" / "mc-la")  # other numbers than mc's
    for name, la, epochs in (("mc", False, 12), ("mc-la", True, 12), ("agentprm", False, 1)):
        train = {"beta": 1.0, "mc_advantage_loss": la, "items": 2 if "mc" in name else 24, "epochs": epochs}
        d = run / "prm" / name
        d.mkdir(parents=True)
        objective = "agentprm" if name == "agentprm" else "mc"
        (d / "prm_config.json").write_text(json.dumps({"objective": objective, "train": {**train, "steps": 12}}))
    report = write_report(run).read_text()
    table3 = report[report.index("(d) Table 3") : report.index("(e) PRM scores")]
    rows = [ln for ln in table3.splitlines() if ln.startswith("| MC-based") or ln.startswith("| TD-based")]
    assert [r.split(" | ")[0] for r in rows] == [
        "| MC-based, L_Q only, the paper's MC (`mc`)",
        "| MC-based, L_Q + β·L_A, as AgentPRM (`mc-la`)",
        "| TD-based, L_Q + β·L_A (`agentprm`)",
    ]
    assert [r.split(" | ")[1] for r in rows] == ["2.5× (1500 tok)", "2.5× (1500 tok)", "1.0× (600 tok)"]
    orm = read_trajectories(run / "eval" / "scripted" / "orm" / "bon_8.jsonl")
    assert rows[1].split(" | ")[2] == f"{100 * sum(t.success for t in orm) / len(orm):.1f}"  # BoN@8: orm's picks
    assert rows[1].endswith("| not run | not run |") and "eval/scripted/mc-la/bon_8.jsonl" in table3  # 4x4, 8x8
    assert "| BoN@8 | agentprm BoN@8 | mc-la BoN@8 |" in table3 and "| BoN@8 | agentprm BoN@8 | mc BoN@8 |" in table3
    claim5 = report[report.index("**5. TD labels") :].split("\n\n")[1]
    assert "vs mc-la BoN@8" in claim5 and "vs mc BoN@8" in claim5
    g = report[report.index("## (g) PRMs") :]
    assert "| mc | mc | 1 | 2 | 12 | 12 | – | – | no (L_Q only) |" in g
    assert "| mc-la | mc | 1 | 2 | 12 | 12 | – | – | yes (L_Q + β·L_A) |" in g
    assert "| agentprm | agentprm | 1 | 24 | 1 | 12 | – | – | – |" in g  # L_A by its objective, not this flag


def test_claim_5_rests_on_measured_label_tokens(run_dir):
    report = write_report(run_dir).read_text()
    line = next(ln for ln in report.splitlines() if "MC label tokens" in ln)
    assert "2.50× TD's (1500 vs 600" in line and line.startswith("- scripted: holds")


def test_duplicate_env_across_folders_is_a_one_line_error(two_runs, tmp_path, monkeypatch, capsys):
    import shutil
    import sys

    from agentprm.cli import main

    a, _ = two_runs
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    monkeypatch.setattr(sys, "argv", ["agentprm", "report", str(a), str(copy), "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(a) in err and str(copy) in err and "scripted" in err
    with pytest.raises(UserError, match="--out"):
        write_report([a, copy])  # several folders need an output folder
    assert RunSet.scan([a, a]).envs() == ["scripted"]  # the same folder named twice is not a duplicate


def test_cli_several_folders_and_one_folder_default(two_runs, tmp_path):
    import shutil

    a, b = two_runs
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(a), str(b), "--out", str(tmp_path / "combined")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "combined" / "report.md").is_file() and (
        tmp_path / "combined" / "plots" / "bon_average.png"
    ).is_file()
    b = Path(shutil.copytree(b, tmp_path / "default-b"))  # leave the shared fixture's folder unwritten
    res = runner.invoke(app, ["report", str(b)])  # one folder, no --out: the report goes into the run folder
    assert res.exit_code == 0 and (b / "report.md").is_file() and (b / "plots" / "bon_scripted-b.png").is_file()
    text = (b / "report.md").read_text()
    assert "# AgentPRM report: `default-b`" in text and "![best-of-N scripted-b](plots/bon_scripted-b.png)" in text
    assert "average over envs" not in text  # one env: nothing to average
    assert "Produced by (run folder" in text and "config `config.yaml`" in text


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from([1, 2, 4, 8, 16]), st.floats(0, 100), min_size=1), min_size=2, max_size=4)
)
def test_average_curve_is_the_per_budget_mean_over_envs(env_curves):
    from agentprm.report.build import average_curves

    per_env = {f"e{i}": {"agentprm": c} for i, c in enumerate(env_curves)}
    avg = average_curves(per_env).get("agentprm", {})
    common = set.intersection(*(set(c) for c in env_curves))
    assert set(avg) == common
    for n, v in avg.items():
        vals = [c[n] for c in env_curves]
        assert min(vals) - 1e-9 <= v <= max(vals) + 1e-9 and abs(v - sum(vals) / len(vals)) < 1e-9


@given(st.lists(st.tuples(st.integers(1, 64), st.one_of(st.none(), st.floats(0.5, 64))), min_size=1, max_size=4))
def test_mean_ratio_is_a_lower_bound_when_any_ratio_is_open(parts):
    from agentprm.report.build import mean_ratio
    from agentprm.search.efficiency import Ratio

    ratios = [Ratio(8, 50.0, None if b is None else b * 8, mx) for mx, b in parts]
    m, lower = mean_ratio(ratios)
    assert lower == any(b is None for _, b in parts)
    expected = [b if b is not None else mx / 8 for mx, b in parts]
    assert abs(m - sum(expected) / len(expected)) < 1e-9


def test_an_empty_result_file_is_a_search_not_yet_run(tmp_path):
    from agentprm.report.layout import RunFolder

    (tmp_path / "eval" / "babyai" / "agentprm").mkdir(parents=True)
    (tmp_path / "eval" / "babyai" / "agentprm" / "beam_2x2.jsonl").write_text("")  # a search just started
    (tmp_path / "eval" / "babyai" / "greedy.jsonl").write_text("")
    assert RunFolder.scan(tmp_path).evals == []


def test_a_combined_report_states_each_folders_episode_cap(two_runs, tmp_path):
    a, b = (tmp_path / "a", tmp_path / "b")
    shutil.copytree(two_runs[0], a)
    shutil.copytree(two_runs[1], b)

    def header(cap_a, cap_b):
        for root, cap, env in ((a, cap_a, "scripted"), (b, cap_b, "scripted-b")):
            (root / "config.yaml").write_text(f"env: {env}\n" + (f"max_rounds: {cap}\n" if cap else ""))
        report = write_report([a, b], tmp_path / "report").read_text()
        return report[: report.index("## ")]

    differ = header(10, 6)  # each folder's cap in its row of the folders table
    assert "episode cap (`max_rounds`)" in differ and "caps differ" in differ
    assert re.search(rf"\| `{re.escape(str(a))}` \| scripted \| .* \| 10 rounds \|", differ)
    assert re.search(rf"\| `{re.escape(str(b))}` \| scripted-b \| .* \| 6 rounds \|", differ)
    assert "`max_rounds`)" in header(10, None) and "| the env's own |" in header(10, None)
    same = header(10, 10)  # they agree: one line, no column
    assert "Episodes capped at **10 rounds** in every run folder" in same and "episode cap (" not in same
    neither = header(None, None)  # the env's own everywhere: as a single folder's report, nothing said
    assert "capped" not in neither and "episode cap (" not in neither
    (a / "config.yaml").write_text("env: scripted\nmax_rounds: 10\n")
    assert "Episodes capped at **10 rounds** (`max_rounds`" in write_report(a).read_text()  # one folder: as before
