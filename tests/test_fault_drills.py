"""Server faults (issue 21 item 2): `collect` through a proxy that drops connections, answers 500, stalls
past the client's timeout and resets mid-body. Every episode must end `done`, `max_rounds` or `env_error`
(never a silent reward 0), none duplicated or lost, retries bounded, and errors counted.
"""

from __future__ import annotations

import json
from collections import Counter

from agentprm.envs.agentgym import AgentGymEnv, RetryPolicy
from agentprm.rollout import RolloutConfig
from agentprm.rollout.jobs import rollout_tasks
from agentprm.serve import create_app, serve_in_thread
from agentprm.testing import ScriptedPolicy
from agentprm.testing.fake_agentgym import NumberedScriptedEnv
from agentprm.testing.fault_proxy import FAULTS, FaultProxy
from agentprm.trajectory import read_trajectories

TASKS = [f"scriptline_{i}" for i in range(10)]
CLIENT = RetryPolicy(retries=2, backoff_s=0.005, timeout_s=0.25, connect_timeout_s=1.0)
CFG = RolloutConfig(temperature=1.0, max_new_tokens=8, max_rounds=6, batch_size=4)


def _collect(url: str, out, rate: float, seed: int = 0):
    policy = ScriptedPolicy(lambda conv, rng: rng.choice("abcd"))
    with FaultProxy(url, rate=rate, seed=seed, stall_s=0.5) as proxy:
        summary = rollout_tasks(
            policy,
            lambda: AgentGymEnv(f"agentgym:scriptline+id@{proxy.url}", policy=CLIENT),
            TASKS,
            out,
            n_per_task=3,
            cfg=CFG,
            seed=seed,
        )
    return summary, proxy


def _comparable(traj) -> dict:
    d = traj.to_dict()
    d.pop("compute")  # wall times and counts differ; what the episode saw and did must not
    return d


def test_collect_through_faulty_proxy_loses_nothing_and_records_errors(tmp_path):
    with serve_in_thread(create_app(NumberedScriptedEnv, "textcraft", max_envs=4096)) as url:
        clean_summary, clean_proxy = _collect(url, tmp_path / "clean.jsonl", rate=0.0)
        summary, proxy = _collect(url, tmp_path / "faulty.jsonl", rate=0.2)

    lines = (tmp_path / "faulty.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    clean = {t.id: t for t in read_trajectories(tmp_path / "clean.jsonl")}
    faulty = {t.id: t for t in read_trajectories(tmp_path / "faulty.jsonl")}
    assert len(ids) == len(set(ids)) == len(TASKS) * 3 and set(ids) == set(clean)  # none lost or duplicated

    assert set(clean_proxy.counts) == {"ok"}
    assert all(proxy.counts[f] > 0 for f in FAULTS), proxy.counts  # every kind of fault was injected
    statuses = Counter(t.status for t in faulty.values())
    assert set(statuses) <= {"done", "max_rounds", "env_error"}
    assert summary.statuses == dict(statuses) and summary.written == len(TASKS) * 3  # errors are counted

    for tid, t in faulty.items():
        want = clean[tid]
        if t.status == "env_error":
            # recorded as such, with the message, and what it did before the failure is what the clean run did
            msg = t.steps[-1].env_error if t.steps else t.meta.get("env_error")
            assert msg and not t.success
            done_before = max(len(t.steps) - 1, 0)  # no steps: the reset failed (slicing [:-1] would be wrong)
            assert [s.action for s in t.steps[:done_before]] == [s.action for s in want.steps[:done_before]]
        else:  # recovered by retry or replay: exactly the clean episode (no silent reward 0)
            assert _comparable(t) == _comparable(want), tid

    # retries stay bounded: replays re-send at most the episode's own steps, a few times
    sent, clean_sent = sum(proxy.counts.values()), sum(clean_proxy.counts.values())
    assert clean_sent < sent < 4 * clean_sent, (sent, clean_sent)
    print(
        f"faults {dict(proxy.counts)}; statuses {dict(statuses)} vs clean {clean_summary.statuses}; requests {sent} vs {clean_sent} clean"
    )
