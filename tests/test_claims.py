"""Tests that would catch a wrong verdict or a wrong number in the report (issue 18 item 3).

Claims are judged on hand-made typed results; BabyAI-style reward results (mean reward, not success) go
through a hand-written run folder into best-of-N, the oracle, Table 1 and the efficiency ratio, with every
value computed by hand below; label values of every outcome method on a hand-built trajectory.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agentprm.labels.outcome import LabelSettings, metric_value
from agentprm.labels.run import outcome_label_records
from agentprm.report import write_report
from agentprm.report.claims import claim_1, claim_2, claim_3, claim_4, claim_5, judge
from agentprm.report.layout import RunSet
from agentprm.report.results import EnvResults, Measure, Results, build_results
from agentprm.rollout.jobs import pass_at_n
from agentprm.run_layout import RunLayout
from agentprm.testing import ScriptedRewardModel
from agentprm.trajectory import JsonlWriter, Step, Trajectory

TASKS = [f"t{i:02d}" for i in range(20)]


def _measure(what: str, pct: float) -> Measure:
    """`pct`% of the 20 tasks solved (the first ones)."""
    k = round(pct / 5)
    return Measure(what, {t: 100.0 if i < k else 0.0 for i, t in enumerate(TASKS)})


def _results(agent: dict[int, float], orm: dict[int, float], pvm: dict[int, float], greedy: float = 20.0) -> Results:
    e = EnvResults("e", "success", Path("."))
    e.greedy = _measure("greedy SFT", greedy)
    for rm, curve in (("agentprm", agent), ("orm", orm), ("pvm", pvm)):
        e.bon[rm] = {n: _measure(f"{rm} BoN@{n}", v) for n, v in curve.items()}
    return Results([e])


AGENT = {1: 30, 2: 40, 4: 50, 8: 60}
PVM = {1: 30, 2: 30, 4: 35, 8: 35}


def test_agentprm_ahead_everywhere_makes_claims_2_and_3_hold():
    res = _results(AGENT, {1: 30, 2: 35, 4: 45, 8: 50}, PVM)
    assert claim_2(res).verdict == "holds" and claim_3(res).verdict == "holds"
    assert claim_1(res).verdict == "holds"


def test_agentprm_trailing_orm_at_one_n_makes_claims_2_and_3_not_hold():
    res = _results(AGENT, {1: 30, 2: 35, 4: 45, 8: 65}, PVM)  # ORM passes AgentPRM at N = 8 only
    c2, c3 = claim_2(res), claim_3(res)
    # claim 2 fails on its efficiency ratio (not a difference: contradicted); claim 3's only failing check is a
    # gain difference of two of 20 tasks, whose interval contains 0: a tie, so the claim is not separated
    assert c2.verdict == "does not hold" and c3.verdict == "not separated"
    failed = [c for c in c2.checks if not c.ok and c.diff is not None]
    assert len(failed) == 1 and "orm BoN@8 65.0" in failed[0].evidence and failed[0].diff.diff == -5.0
    assert [c.evidence for c in c2.checks if not c.ok and c.diff is None] == ["efficiency vs orm at N=8: 0.841x"]
    gain = [c for c in c3.checks if not c.ok]
    assert len(gain) == 1 and gain[0].diff.diff == pytest.approx(10.0 - 20.0)  # AgentPRM +10 vs ORM +20 from N=4 to 8
    assert gain[0].status == "tie" and gain[0].diff.lo < 0 <= gain[0].diff.hi
    # and every other claim is judged on the same numbers, none claims what was not run
    verdicts = {c.title[0]: c.verdict for c in judge(res)}
    assert verdicts["4"] == "not measured" and verdicts["5"] == "not measured" and verdicts["7"] == "not measured"


def test_a_failing_check_is_a_tie_only_when_its_interval_contains_0():
    """A clear loss (interval below 0) decides "does not hold"; a loss inside its interval is a tie and, alone,
    leaves the claim "not separated"; a failing check that is not a difference (a ratio) always counts."""
    from agentprm.report.claims import Check, Claim
    from agentprm.stats import PairedDiff

    def d(lo: float, hi: float, diff: float) -> PairedDiff:
        return PairedDiff(mean_a=50.0 + diff, mean_b=50.0, lo=lo, hi=hi, tasks=90, only_a=0, only_b=0)

    win, tie, loss = d(3.1, 13.6, 8.0), d(-2.2, 2.2, -0.04), d(-10.2, -1.2, -5.3)
    checks = [Check("babyai", True, "win", win), Check("babyai", False, "-0.0", tie)]
    assert [c.status for c in checks] == ["holds", "tie"]
    assert Claim("5", "r", checks).verdict == "not separated"
    assert Claim("5", "r", checks).per_env_text() == "babyai: not separated"
    assert Claim("5", "r", [*checks, Check("textcraft", False, "clear", loss)]).per_env() == {
        "babyai": "not separated",
        "textcraft": "does not hold",
    }
    assert Claim("5", "r", [*checks, Check("babyai", False, "clear", loss)]).verdict == "does not hold"
    assert Claim("2", "r", [*checks, Check("babyai", False, "efficiency 0.7x")]).verdict == "does not hold"
    assert Claim("1", "r", checks[:1]).verdict == "holds"


def test_claim_1_fails_when_an_rm_does_not_beat_greedy_and_cites_its_interval():
    res = _results(AGENT, {1: 30, 2: 35, 4: 45, 8: 50}, PVM, greedy=40.0)
    c = claim_1(res)
    assert c.verdict == "not separated"  # PVM 35 vs greedy 40: one task of 20, inside its interval
    bad = [k for k in c.checks if not k.ok]
    assert [k.evidence.split(" vs ")[0] for k in bad] == ["pvm BoN@8 35.0"]
    assert "95% CI [" in bad[0].evidence and "(20 tasks)" in bad[0].evidence and bad[0].status == "tie"
    far = _results(AGENT, {1: 30, 2: 35, 4: 45, 8: 50}, {n: 5 for n in AGENT}, greedy=40.0)
    c = claim_1(far)  # PVM 5 vs greedy 40: seven tasks lost, interval below 0
    assert c.verdict == "does not hold" and [k.status for k in c.checks if not k.ok] == ["does not hold"]


def test_claim_4_compares_with_the_beta0_ablation():
    res = _results(AGENT, {1: 30, 2: 35, 4: 45, 8: 50}, PVM)
    e = res.envs[0]
    e.bon["agentprm-beta0"] = {n: _measure("beta0", v + 5) for n, v in AGENT.items()}
    assert claim_4(res).verdict == "not separated"  # one task of 20
    e.bon["agentprm-beta0"] = {n: _measure("beta0", v + 25) for n, v in AGENT.items()}
    assert claim_4(res).verdict == "does not hold"
    e.bon["agentprm-beta0"] = {n: _measure("beta0", v - 5) for n, v in AGENT.items()}
    assert claim_4(res).verdict == "holds"


def test_claim_5_compares_agentprm_with_both_mc_prms():
    """AgentPRM against the MC PRM without L_A (`mc`, the paper's) and with it (`mc-la`, like for like): the
    claim holds only when AgentPRM is ahead of both, and each check names the MC PRM it compares with."""
    res = _results(AGENT, {1: 30, 2: 35, 4: 45, 8: 50}, PVM)
    e = res.envs[0]
    e.label_tokens = {"td-gae": 600, "mc": 1500}
    e.bon["mc"] = {n: _measure(f"mc BoN@{n}", v - 10) for n, v in AGENT.items()}
    c = claim_5(res)
    assert c.verdict == "holds" and any("`mc-la` (L_Q + β·L_A, as AgentPRM) not run" in m for m in c.missing)
    e.bon["mc-la"] = {n: _measure(f"mc-la BoN@{n}", v + 25) for n, v in AGENT.items()}  # with L_A: ahead of AgentPRM
    c = claim_5(res)
    assert c.verdict == "does not hold" and not c.missing
    failed = [k.evidence.split(" vs ")[1].split(" ")[0] for k in c.checks if not k.ok]
    assert failed == ["mc-la"] * 3  # N = 2, 4, 8; every check against `mc` holds
    assert sum("vs mc BoN@" in k.evidence and k.ok for k in c.checks) == 3
    assert "2.50× TD's" in c.checks[0].evidence and c.checks[0].ok  # one labelling: one token check
    assert "`mc`: L_Q only" in c.rule and "`mc-la`: L_Q + β·L_A" in c.rule


# -- BabyAI-style reward results through the report, values by hand -------------------------------------

# Three tasks, four best-of-N candidates each: (reward, agentprm's last-step score, orm's).
CANDS = {
    "t1": [(0.0, 0.1, 0.9), (0.6, 0.5, 0.1), (0.9, 0.9, 0.2), (0.3, 0.2, 0.3)],
    "t2": [(0.5, 0.7, 0.1), (0.0, 0.1, 0.9), (0.0, 0.2, 0.5), (0.8, 0.9, 0.2)],
    "t3": [(0.0, 0.3, 0.2), (0.0, 0.4, 0.1), (0.7, 0.8, 0.9), (0.0, 0.1, 0.3)],
}
GREEDY = {"t1": 0.2, "t2": 0.0, "t3": 0.4}
BEAM = {"agentprm": {"t1": 0.9, "t2": 0.8, "t3": 0.0}, "orm": {"t1": 0.3, "t2": 0.0, "t3": 0.0}}


def _traj(task: str, reward: float, **meta) -> Trajectory:
    steps = [Step(0, "obs", "go", "go", reward=reward, done=True, generated_tokens=3)]
    return Trajectory(
        f"{task}-{meta.get('search', {}).get('rm')}",
        "babyai",
        task,
        "sys",
        "obs",
        steps,
        reward=reward,
        success=reward > 0,
        status="done",
        meta=meta,
    )


def _write_babyai_run(root: Path) -> Path:
    lay = RunLayout(root)
    root.mkdir(parents=True)
    lay.config.write_text("env: babyai\n")
    with JsonlWriter(lay.result("babyai", "greedy")) as w:
        for t, r in GREEDY.items():
            w.write(_traj(t, r, search={"strategy": "greedy", "budget": "1", "rm": None, "command": "hand-made"}))
    for k, rm in enumerate(("agentprm", "orm")):
        with JsonlWriter(lay.result("babyai", "bon", rm, "4")) as w:
            for t, cands in CANDS.items():
                cd = [{"success": r > 0, "reward": r, "status": "done", "scores": [0.0, s[k]]} for r, *s in cands]
                w.write(
                    _traj(
                        t,
                        0.0,
                        search={
                            "strategy": "bon",
                            "budget": "4",
                            "rm": rm,
                            "candidates": cd,
                            "aggregation": "last",
                            "command": "hand-made",
                        },
                    )
                )
        with JsonlWriter(lay.result("babyai", "beam", rm, "2x2")) as w:
            for t, r in BEAM[rm].items():
                w.write(_traj(t, r, search={"strategy": "beam", "budget": "2x2", "rm": rm, "command": "hand-made"}))
    return root


def _row(report: str, section: str, first: str) -> list[str]:
    tail = report[report.index(section) :]
    line = next(ln for ln in tail.splitlines() if ln.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_babyai_reward_results_flow_through_bon_oracle_table1_and_efficiency(tmp_path):
    run = _write_babyai_run(tmp_path / "b")
    res = build_results(RunSet.scan([run]))
    e = res.envs[0]
    assert e.metric == "reward"
    # by hand: AgentPRM picks (t1, t2, t3) = cands 0,0,0 at N=1; 1,0,1 at N=2; 2,3,2 at N=4
    assert e.curve("agentprm") == pytest.approx({1: 50 / 3, 2: 110 / 3, 4: 80.0})
    # ORM picks 0,0,0; 0,1,0; 0,1,2 -> rewards (0, .5, 0), (0, 0, 0), (0, 0, .7)
    assert e.curve("orm") == pytest.approx({1: 50 / 3, 2: 0.0, 4: 70 / 3})
    # oracle@N is the best reward among the first N (not the mean, not success)
    assert e.oracle_curve() == pytest.approx({1: 50 / 3, 2: 110 / 3, 4: 80.0})
    assert e.greedy.mean == pytest.approx(20.0)  # mean reward; its success rate would be 66.7
    assert [str(r) for r in e.efficiency()["orm"]] == ["1x", "> 2x", "> 1x"]

    report = write_report(run).read_text()
    assert _row(report, "(a) Table 1", "SFT (greedy)")[0] == "20.0"
    assert _row(report, "(a) Table 1", "agentprm")[1] == "56.7" and _row(report, "(a) Table 1", "orm")[1] == "10.0"
    assert _row(report, "(b) Best-of-N", "agentprm") == ["16.7", "36.7", "80.0"]
    assert _row(report, "(b) Best-of-N", "orm") == ["16.7", "0.0", "23.3"]
    assert _row(report, "(b) Best-of-N", "oracle@N") == ["16.7", "36.7", "80.0"]
    assert _row(report, "(c) Compute-efficiency", "orm") == ["1x", "> 2x", "> 1x"]
    assert "Metric: reward × 100" in report
    diff = _row(report, "(b) Best-of-N", "BoN@4")  # AgentPRM vs ORM at 4: 80.0 - 23.3 over the 3 tasks
    assert (
        diff[:4] == ["agentprm BoN@4", "orm BoN@4", "80.0", "23.3"] and diff[4].startswith("+56.7 [") and diff[5] == "3"
    )
    head = _row(report, "(b) Best-of-N", "headroom @4")  # oracle@4 80.0 over greedy's mean reward 20.0
    assert head[:4] == ["oracle@4", "greedy SFT", "80.0", "20.0"] and head[4].startswith("+60.0 [")


def test_pass_at_n_and_oracle_on_hand_made_outcomes():
    def t(task, ok):
        return Trajectory(f"{task}{ok}", "x", task, "", "", success=ok, status="done", reward=float(ok))

    trajs = [t("a", False), t("a", True), t("b", False), t("b", False), t("c", True)]
    assert pass_at_n(trajs) == pytest.approx(2 / 3)
    assert math.isnan(pass_at_n([]))
    assert metric_value(trajs[1], "success") == 1.0 and metric_value(trajs[0], "reward") == 0.0


# -- label values for every outcome method on a hand-built trajectory ----------------------------------


def _hand_trajectory() -> Trajectory:
    steps = [Step(i, f"o{i}", f"a{i}", f"a{i}", generated_tokens=2) for i in range(3)]
    return Trajectory("h", "babyai", "t", "sys", "o0", steps, reward=0.6, success=True, status="done")


def _labels(method, settings=LabelSettings(), scorer=None):
    (rec,) = outcome_label_records(method, [_hand_trajectory()], settings, scorer)
    return rec


def test_label_values_of_every_outcome_method():
    assert _labels("pvm").labels == pytest.approx([0.6, 0.6, 0.6])
    assert _labels("orm").labels[:2] == [None, None] and _labels("orm").labels[2] == pytest.approx(0.6)
    # TD-GAE from zero predictions: (γλ)^(T−t)·r
    assert _labels("td-gae").labels == pytest.approx([0.95**2 * 0.6, 0.95 * 0.6, 0.6])
    # from predictions Q = (0.2, 0.5, 0.8): Q̂_0 = (1−λ)(Q_0 + λQ_1) + λ²r, Q̂_1 = (1−λ)Q_1 + λr, Q̂_2 = r
    q = iter([0.2, 0.5, 0.8])
    scorer = ScriptedRewardModel(lambda conv: next(q))
    assert _labels("td-gae", scorer=scorer).labels == pytest.approx(
        [0.05 * (0.2 + 0.95 * 0.5) + 0.9025 * 0.6, 0.05 * 0.5 + 0.95 * 0.6, 0.6]
    )
    binary = LabelSettings(binary_outcome=True)
    assert _labels("pvm", binary).labels == [1.0, 1.0, 1.0] and _labels("orm", binary).labels[2] == 1.0
    assert _labels("pvm").sampled_tokens == 6  # the trajectory's own generated tokens


def test_best_of_n_ranks_env_and_policy_failures_below_every_other_candidate():
    from agentprm.search.best_of_n import Candidate, select

    def c(status, score):
        return Candidate(False, 0.0, status, [score])

    assert select([c("policy_error", 9.0), c("done", 0.1)]) == 1  # as beam search ranks them (one function)
    assert select([c("env_error", 9.0), c("max_rounds", -5.0)]) == 1
    assert select([c("env_error", 9.0), c("policy_error", 1.0)]) == 0  # only failures: the best score
