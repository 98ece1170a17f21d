"""The paper's claims (paper.md §8) judged on the typed results: one pure function per claim.

Each claim is a list of `Check`s (one measured comparison in one env); a difference of two methods carries
its 95% paired-bootstrap interval over the tasks both have. A check holds on its point estimate (as the paper
states its numbers); a check that fails is a *tie* when its difference's interval contains 0 (the task sample
cannot tell the two apart) and *contradicted* otherwise (an interval below 0, or a check that is not a
difference, such as an efficiency ratio or a token count). The verdict: "holds" when every check holds;
"does not hold" when any check is contradicted (a finding, reported as measured); "not separated" when the
only failing checks are ties; "not measured" when nothing could be checked. How many differences have an
interval excluding 0 is stated beside the verdict, so a "holds" resting on differences within noise reads as
such.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentprm.labels.outcome import label_method
from agentprm.report.layout import ABLATION_RM
from agentprm.report.results import (
    MC_RMS,
    TABLE1_RMS,
    EnvResults,
    Measure,
    Results,
    compare,
    td_label_method,
)
from agentprm.stats import PairedDiff

MEAN_ENV = "mean over envs"

HOLDS, TIE, FAILS = "holds", "tie", "does not hold"
NOT_SEPARATED = "not separated"


def _combine(statuses: list[str]) -> str:
    """One verdict from check statuses: a contradiction decides; failing ties alone leave it open."""
    if FAILS in statuses:
        return FAILS
    return NOT_SEPARATED if TIE in statuses else HOLDS


@dataclass
class Check:
    """One measured comparison a claim rests on, in one env (or "mean over envs")."""

    env: str
    ok: bool
    evidence: str  # the numbers compared, e.g. "agentprm BoN@16 45.0 vs greedy SFT 30.0: +15.0, 95% CI [...]"
    diff: PairedDiff | None = None  # the paired difference behind `ok`, when it is one

    @property
    def status(self) -> str:
        """ "holds", "tie" (fails on its point estimate, interval contains 0) or "does not hold"."""
        if self.ok:
            return HOLDS
        return TIE if self.diff is not None and self.diff.sign == 0 else FAILS


@dataclass
class Claim:
    """A claim of paper.md §8 on these results (see the module docstring for the verdict)."""

    title: str
    rule: str  # what is compared, in words
    checks: list[Check]
    missing: list[str] = field(default_factory=list)  # the parts that could not be checked, and why

    def per_env(self) -> dict[str, str]:
        """Each env's verdict over its own checks (the module docstring's rule)."""
        by_env: dict[str, list[str]] = {}
        for c in self.checks:
            by_env.setdefault(c.env, []).append(c.status)
        return {env: _combine(st) for env, st in by_env.items()}

    @property
    def verdict(self) -> str:
        if not self.checks:
            return "not measured"
        return _combine([c.status for c in self.checks])

    def strength(self) -> str:
        """How many of the checks' differences have a 95% interval that excludes 0 in the checked direction."""
        diffs = [(c.diff, c.ok) for c in self.checks if c.diff is not None]
        if not diffs:
            return "no interval (not a difference of per-task means)" if self.checks else ""
        clear = sum(1 for d, ok in diffs if d.sign != 0 and (d.sign > 0) == ok)
        return f"{clear}/{len(diffs)} differences with a 95% interval excluding 0"

    def per_env_text(self) -> str:
        return "; ".join(f"{e}: {v}" for e, v in self.per_env().items()) or "–"


def _diff_check(
    env: str, a: Measure, b: Measure, ok: Callable[[PairedDiff], bool] = lambda d: d.diff > 0, note: str = ""
) -> Check | None:
    d = compare(a, b)
    if d is None:
        return None
    return Check(env, ok(d), f"{a.what} {d.mean_a:.1f} vs {b.what} {d.mean_b:.1f}: {d}{note}", d)


def _add(checks: list[Check], c: Check | None) -> None:
    if c is not None:
        checks.append(c)


def claim_1(res: Results) -> Claim:
    """RMs with BoN or search beat greedy SFT, and the gain grows with inference compute."""
    checks: list[Check] = []
    missing: list[str] = []
    for e in res.envs:
        if e.greedy is None:
            missing.append(f"{e.env}: no greedy SFT result")
        for base in (e.greedy, e.rft):  # the training-based baselines: greedy SFT and, when run, greedy RFT
            if base is None:
                continue
            for rm in TABLE1_RMS:
                if rm in e.bon:
                    _add(checks, _diff_check(e.env, e.bon[rm][max(e.bon[rm])], base))
                if rm in e.beam:
                    _add(checks, _diff_check(e.env, e.beam[rm][max(e.beam[rm])], base))
        a = e.bon.get("agentprm", {})
        if len(a) > 1:
            _add(checks, _diff_check(e.env, a[max(a)], a[min(a)]))
        b = e.beam.get("agentprm", {})
        if len(b) > 1:
            _add(checks, _diff_check(e.env, b[max(b)], b[min(b)]))
    return Claim(
        "1. RMs with BoN or search beat greedy SFT/RFT, and the gain grows with compute",
        "every trained RM (orm, pvm, agentprm) at its largest BoN and beam budget > greedy SFT (and greedy RFT when run); AgentPRM's largest budget > its smallest (BoN and beam)",
        checks,
        missing,
    )


def claim_2(res: Results) -> Claim:
    """AgentPRM is more compute-efficient than PVM/ORM (paper: ~8x on average) and wins in BoN and beam."""
    checks: list[Check] = []
    missing: list[str] = []
    per_env = [(e.env, e.efficiency()) for e in res.envs]
    avg = res.average_efficiency()
    if len(res.envs) > 1:
        per_env.append((MEAN_ENV, avg))
    for env, eff in per_env:
        for b in ("pvm", "orm"):
            if ratios := eff.get(b):
                last = ratios[-1]
                paper = " (paper: ~8×)" if env == MEAN_ENV else ""
                checks.append(
                    Check(
                        env,
                        last.defined and (last.value is None or last.value > 1),
                        f"efficiency vs {b} at N={last.n}: {last}{paper}",
                    )
                )
    for e in res.envs:
        a = e.bon.get("agentprm", {})
        for b in ("pvm", "orm"):
            c = e.bon.get(b, {})
            for n in sorted(set(a) & set(c)):
                if n >= 2:  # N = 1 is one sample: every RM picks it
                    _add(checks, _diff_check(e.env, a[n], c[n], lambda d: d.diff >= 0))
            for budget, m in e.beam.get(b, {}).items():
                if budget in e.beam.get("agentprm", {}):
                    _add(checks, _diff_check(e.env, e.beam["agentprm"][budget], m, lambda d: d.diff >= 0))
    if len(res.envs) > 1 and not avg:
        missing.append("efficiency on the env-averaged curve (needs agentprm and pvm/orm best-of-n in every env)")
    if len(res.envs) < 2:
        missing.append("the paper's ~8× is a mean over several envs: this report has one env")
    return Claim(
        "2. AgentPRM is more compute-efficient than PVM/ORM (paper: ~8× on average) and wins in both BoN and beam",
        "efficiency ratio at AgentPRM's largest N > 1 (per env and on the env-averaged curve); AgentPRM ≥ pvm/orm at every BoN budget N ≥ 2 and every beam budget",
        checks,
        missing,
    )


def claim_3(res: Results) -> Claim:
    """It scales robustly: from the middle to the largest BoN budget AgentPRM does not drop and gains more than
    PVM/ORM (which plateau or degrade)."""
    checks: list[Check] = []
    missing: list[str] = []
    for e in res.envs:
        a = e.bon.get("agentprm", {})
        if len(a) < 3:
            missing.append(f"{e.env}: needs AgentPRM best-of-n with ≥ 3 budgets")
            continue
        ns = sorted(a)
        mid, top = ns[len(ns) // 2], ns[-1]
        _add(checks, _diff_check(e.env, a[top], a[mid], lambda d: d.diff >= 0, f" (AgentPRM N={mid}→{top})"))
        for b in ("pvm", "orm"):
            c = e.bon.get(b, {})
            if mid in c and top in c:
                gain_a = _gain(a[top], a[mid], f"AgentPRM gain N={mid}→{top}")
                gain_b = _gain(c[top], c[mid], f"{b} gain")
                _add(checks, _diff_check(e.env, gain_a, gain_b))
    return Claim(
        "3. AgentPRM scales robustly; ORM and PVM plateau or degrade",
        "from the middle to the largest BoN budget AgentPRM does not drop, and gains more than pvm/orm (paired per task)",
        checks,
        missing,
    )


def _gain(hi: Measure, lo: Measure, what: str) -> Measure:
    common = set(hi.values) & set(lo.values)
    return Measure(what, {t: hi.values[t] - lo.values[t] for t in common})


def claim_4(res: Results) -> Claim:
    """Modelling progress (L_A) matters: AgentPRM beats the same PRM trained with beta = 0."""
    checks: list[Check] = []
    for e in res.envs:
        full, abl = e.bon.get("agentprm", {}), e.bon.get(ABLATION_RM, {})
        if common := sorted(set(full) & set(abl)):
            _add(checks, _diff_check(e.env, full[common[-1]], abl[common[-1]]))
        for budget, m in e.beam.get(ABLATION_RM, {}).items():
            if budget in e.beam.get("agentprm", {}):
                _add(checks, _diff_check(e.env, e.beam["agentprm"][budget], m))
    return Claim(
        "4. Modelling progress (L_A) matters",
        f"AgentPRM > the same PRM trained with β = 0 (`{ABLATION_RM}`) at the largest common BoN budget and every beam budget run with both",
        checks,
        [] if checks else ["no β = 0 results"],
    )


def claim_5(res: Results) -> Claim:
    """TD + GAE labels need fewer sampled tokens than MC and give better PRMs: AgentPRM against every MC PRM
    run (`MC_RMS`: `mc`, the paper's literal L_Q-only MC, and `mc-la`, with L_A as AgentPRM, which isolates
    the labels)."""
    checks: list[Check] = []
    missing: list[str] = []
    td = td_label_method()
    mc_label = label_method("mc") or "mc"  # every MC PRM's label file: one labelling, one cost
    for e in res.envs:
        ran = [rm for rm in MC_RMS if rm in e.bon or rm in e.beam]
        if not ran:
            continue
        mc_tok, td_tok = e.label_tokens.get(mc_label), e.label_tokens.get(td)
        if mc_tok and td_tok:
            checks.append(
                Check(
                    e.env,
                    mc_tok > td_tok,
                    f"MC label tokens {mc_tok / td_tok:.2f}× TD's ({mc_tok} vs {td_tok}; paper: 1.5–2.8×)",
                )
            )
        else:
            missing.append(f"{e.env}: label tokens not recorded for both MC and TD")
        for rm in ran:
            for n in sorted(set(e.bon.get(rm, {})) & set(e.bon.get("agentprm", {}))):
                if n >= 2:
                    _add(checks, _diff_check(e.env, e.bon["agentprm"][n], e.bon[rm][n], lambda d: d.diff >= 0))
            for budget, m in e.beam.get(rm, {}).items():
                if budget in e.beam.get("agentprm", {}):
                    _add(checks, _diff_check(e.env, e.beam["agentprm"][budget], m, lambda d: d.diff >= 0))
        missing += [f"{e.env}: `{rm}` ({how}) not run" for rm, how in MC_RMS.items() if rm not in ran]
    if not any(rm in e.bon or rm in e.beam for e in res.envs for rm in MC_RMS):
        missing.append("no MC-trained PRM results")
    rows = "; ".join(f"`{rm}`: {how}" for rm, how in MC_RMS.items())
    return Claim(
        "5. TD labels cost fewer sampled tokens than MC and give a better PRM",
        "MC's label tokens > TD's; TD-trained AgentPRM ≥ each MC-trained PRM run "
        f"({rows}; against `mc-la` only the labels differ) in every BoN (N ≥ 2) and beam setting run with both",
        checks,
        missing,
    )


def claim_7(res: Results) -> Claim:
    """Value estimates separate the steps of successful from failed trajectories."""
    checks = [
        Check(e.env, a > 0.5, f"AUC {a:.3f} ({len(s.ok)} steps of successful, {len(s.bad)} of failed candidates)")
        for e in res.envs
        if (s := e.scores.get("agentprm")) and (a := s.auc) == a
    ]
    return Claim(
        "7. AgentPRM scores steps of successful trajectories higher than those of failed ones",
        "AUC (a successful trajectory's step scored above a failed one's) > 0.5 on the best-of-n candidates",
        checks,
        [] if checks else ["no AgentPRM best-of-n candidates with both outcomes"],
    )


CLAIMS: Sequence[Callable[[Results], Claim]] = (claim_1, claim_2, claim_3, claim_4, claim_5, claim_7)


def judge(res: Results) -> list[Claim]:
    return [f(res) for f in CLAIMS]


__all__ = ["CLAIMS", "FAILS", "HOLDS", "MEAN_ENV", "NOT_SEPARATED", "TIE", "Check", "Claim", "EnvResults", "judge"]
