"""serve-prm under server faults (issue 21 item 2): `RemoteRewardModel` talks to a real serve-prm app through
the fault proxy (dropped connections, 500s, stalls past the timeout, resets mid-body, and 200s whose JSON
is cut). Every call returns exactly the in-process scorer's scores or raises RewardModelError, never a wrong
or default score, and retries stay bounded."""

from __future__ import annotations

from collections import Counter

import pytest

from agentprm.conversation import trajectory_messages
from agentprm.errors import RewardModelError
from agentprm.prm.client import RemoteRewardModel
from agentprm.prm.model import PRMScorer
from agentprm.serve import serve_in_thread
from agentprm.serve.prm import ServeLimits, create_prm_app
from agentprm.testing.fault_proxy import FAULTS, FaultProxy
from tests.prm_helpers import scripted_dataset, tiny_prm_dir

ALL_FAULTS = (*FAULTS, "garbage")
RETRIES = 2


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    prm = tiny_prm_dir(tmp_path_factory.mktemp("prm") / "prm")
    app = create_prm_app(PRMScorer.load(prm), ServeLimits(max_wait_ms=2))
    with serve_in_thread(app) as url:
        yield url, PRMScorer.load(prm)


@pytest.fixture(scope="module")
def convs():
    return [trajectory_messages(t) for t in scripted_dataset(8, seed=5)]


def test_every_call_scores_exactly_or_raises(served, convs):
    url, local = served
    acts = ["Thought: I type a.\nAction: a", "Action: z", "Action: b"]
    outcomes: Counter[str] = Counter()
    reasons: list[str] = []
    calls = 48
    with FaultProxy(url, rate=0.4, seed=1, faults=ALL_FAULTS, stall_s=2.0) as proxy:
        client = RemoteRewardModel(proxy.url, timeout=1.0, retries=RETRIES, backoff=0.01, check=False, chunk=8)
        for i in range(calls):
            part = [convs[(i + j) % len(convs)] for j in range(1 + i % 3)]
            try:
                if i % 2:
                    got, want = client.score(part), local.score(part)
                else:
                    prefix = part[0][:-1]  # ends in a user turn
                    got, want = [client.score_candidates(prefix, acts)], [local.score_candidates(prefix, acts)]
            except RewardModelError as e:
                outcomes["error"] += 1
                reasons.append(e.reason)
                continue
            outcomes["ok"] += 1
            assert [g.tokens for g in got] == [w.tokens for w in want]
            for g, w in zip(got, want, strict=True):
                assert g.scores == pytest.approx(w.scores, abs=1e-5)  # never a wrong or default score
        client.close()
    print(f"faults {dict(proxy.counts)}; outcomes {dict(outcomes)}; reasons {reasons[:4]}")
    assert all(proxy.counts[f] > 0 for f in ALL_FAULTS), proxy.counts  # every kind was injected
    assert outcomes["ok"] > calls // 2 and outcomes["ok"] + outcomes["error"] == calls
    assert sum(proxy.counts.values()) <= calls * RETRIES  # one request per attempt, `retries` attempts at most


def test_a_server_that_always_fails_is_an_error_after_bounded_retries(served, convs):
    url, _ = served
    for fault in ALL_FAULTS:
        with FaultProxy(url, rate=1.0, seed=0, faults=(fault,), stall_s=0.6) as proxy:
            client = RemoteRewardModel(proxy.url, timeout=0.3, retries=3, backoff=0.01, check=False)
            with pytest.raises(RewardModelError):
                client.score(convs[:2])
            client.close()
        assert proxy.counts[fault] == 3, (fault, proxy.counts)  # retried, and exactly 3 attempts
