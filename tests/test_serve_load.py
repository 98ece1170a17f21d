"""`serve-env` under concurrent load, small form (issue 21 item 4; `benchmarks/serve_env_load.py` is the
long form): no failed request, no leaked session, threads bounded, oversize bodies 413."""

from __future__ import annotations

import os

import httpx
import pytest

from agentprm.serve import create_app, serve_in_thread
from agentprm.testing.fake_agentgym import NumberedScriptedEnv
from agentprm.testing.load import drive


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


def test_oversize_request_is_413():
    with serve_in_thread(create_app(NumberedScriptedEnv, "textcraft", max_body_bytes=1000)) as url:
        r = httpx.post(f"{url}/step", json={"id": 0, "action": "x" * 2000})
        assert r.status_code == 413 and "over 1000 bytes" in r.json()["error"]
        assert httpx.post(f"{url}/create", json={}).status_code == 200
