"""`serve-env` under concurrent load, small form (issue 21 item 4; `benchmarks/serve_env_load.py` is the
long form): no failed request, no leaked session, threads bounded, oversize bodies 413."""

from __future__ import annotations

import os

import httpx
import pytest

from agentprm.serve import create_app, serve_in_thread
from agentprm.testing.fake_agentgym import NumberedScriptedEnv
from agentprm.testing.load import drive, serve_env_process, server_stats


@pytest.mark.parametrize("protocol", ["babyai", "webshop"])
def test_concurrent_clients_leave_no_session_behind(protocol):
    app = create_app(NumberedScriptedEnv, protocol, max_envs=64)
    with serve_in_thread(app) as url:
        res = drive(url, protocol, clients=16, sessions=96, steps=2, server_pid=os.getpid())
        assert not res.errors, res.errors[:3]
        assert res.sessions == 96 and res.requests == 96 * 5
        assert len(app.state.table) == 0 and app.state.table.evicted == 0  # every session closed, none evicted
        print(res.summary())
        threads = [t for _, _, t in res.samples]
        # bounded: 16 clients + the server's worker pool (anyio's 40), whatever the number of sessions
        assert threads and max(threads) <= threads[0] + 45


def test_cli_server_frees_every_closed_session():
    """The benchmark's form at 300 sessions: `agentprm serve-env` in a subprocess, zero failed requests,
    and its /stats shows every session created was closed (none open, none evicted to make room)."""
    with serve_env_process("babyai", max_envs=256) as (url, pid):
        res = drive(url, "babyai", clients=16, sessions=300, steps=3, server_pid=pid, samples=3)
        assert not res.errors, res.errors[:3]
        assert res.requests == 300 * 6 and res.pct(0.99) > 0
        assert server_stats(url) == {"open": 0, "created": 300, "closed": 300, "evicted": 0}
        assert res.samples[0][0] == 0 and res.samples[-1][0] == 300  # start and end of the run measured
        rss0, rss1 = res.samples[0][1], res.samples[-1][1]
        assert rss1 - rss0 < 32 * 1024, res.summary()  # KiB: a leak of whole envs would grow far past this
        httpx.post(f"{url}/create", timeout=10)  # one left open: the counters see it
        assert server_stats(url)["open"] == 1
        print(res.summary())


def test_oversize_request_is_413():
    with serve_in_thread(create_app(NumberedScriptedEnv, "textcraft", max_body_bytes=1000)) as url:
        r = httpx.post(f"{url}/step", json={"id": 0, "action": "x" * 2000})
        assert r.status_code == 413 and "over 1000 bytes" in r.json()["error"]
        assert httpx.post(f"{url}/create", json={}).status_code == 200
