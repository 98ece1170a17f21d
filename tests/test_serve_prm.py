"""`agentprm serve-prm` on a real uvicorn (127.0.0.1): scores equal in-process scoring, concurrent
requests are batched, limits answer 4xx, and a server that is down is an error, never a score."""

import threading

import httpx
import pytest

from agentprm.conversation import trajectory_messages
from agentprm.errors import RewardModelError, UserError
from agentprm.prm.base import RewardModel
from agentprm.prm.client import RemoteRewardModel
from agentprm.prm.model import PRMScorer
from agentprm.search.beam import BeamConfig, beam_search
from agentprm.search.loading import load_reward_model
from agentprm.serve import serve_in_thread
from agentprm.serve.prm import ServeLimits, create_prm_app
from tests.prm_helpers import scripted_dataset, tiny_prm_dir
from tests.search_fakes import KeyedPolicy, make_env


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    return tiny_prm_dir(tmp_path_factory.mktemp("prm") / "prm")


@pytest.fixture(scope="module")
def local(prm_dir):
    return PRMScorer.load(prm_dir)


@pytest.fixture(scope="module")
def server(prm_dir):
    app = create_prm_app(
        PRMScorer.load(prm_dir),
        ServeLimits(
            max_wait_ms=20, max_request_conversations=64, max_conversation_tokens=400, max_request_bytes=200_000
        ),
    )
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def convs():
    return [trajectory_messages(t) for t in scripted_dataset(12, seed=5)]


def test_score_and_candidates_equal_in_process(server, local, convs):
    url, _ = server
    remote = RemoteRewardModel(url)
    assert isinstance(remote, RewardModel)
    got, want = remote.score(convs), local.score(convs)
    assert [len(g.scores) for g in got] == [len(w.scores) for w in want]
    assert [g.tokens for g in got] == [w.tokens for w in want]
    for g, w in zip(got, want):
        assert g.scores == pytest.approx(w.scores, abs=1e-5)
    assert len({round(s, 4) for g in got for s in g.scores}) > 5  # real, varied scores
    prefix = convs[0][:-1]  # ends in a user turn
    acts = ["Thought: I type a.\nAction: a", "Thought: I type z.\nAction: z", "Action: b"]
    rc, lc = remote.score_candidates(prefix, acts), local.score_candidates(prefix, acts)
    assert rc.scores == pytest.approx(lc.scores, abs=1e-5) and rc.tokens == lc.tokens


def test_get_reward_is_openrlhf_shaped_and_scores_the_last_step(server, local, convs):
    url, _ = server
    tok = local.tokenizer
    queries = [tok.apply_chat_template(c, tokenize=False) for c in convs[:4]]
    queries[1] = queries[1].rstrip() + tok.pad_token * 3  # OpenRLHF may send padded text
    r = httpx.post(f"{url}/get_reward", json={"query": queries, "prompts": ["p"] * 4, "labels": [None] * 4})
    assert r.status_code == 200
    rewards = r.json()["rewards"]
    want = [s.scores[-1] for s in local.score(convs[:4])]
    assert rewards == pytest.approx(want, abs=1e-5)


def test_concurrent_requests_share_batches(server, local, convs):
    url, app = server
    before = dict(vars(app.state.batcher.stats))
    results = [None] * 16
    barrier = threading.Barrier(16)

    def client(i):
        rm = RemoteRewardModel(url, check=False)
        barrier.wait()
        results[i] = rm.score([convs[i % len(convs)]])[0].scores

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    stats = vars(app.state.batcher.stats)
    assert stats["requests"] - before["requests"] == 16
    assert stats["batches"] - before["batches"] < 16  # some requests were scored together
    for i, s in enumerate(results):
        assert s == pytest.approx(local.score([convs[i % len(convs)]])[0].scores, abs=1e-5)


def test_limits_answer_413_and_bad_input_422(server, convs):
    url, _ = server
    r = httpx.post(f"{url}/score", json={"conversations": [convs[0]] * 65})
    assert r.status_code == 413 and "at most 64" in r.json()["detail"]
    long = [*convs[0], {"role": "user", "content": "word " * 500}, {"role": "assistant", "content": "Action: a"}]
    r = httpx.post(f"{url}/score", json={"conversations": [long]})
    assert r.status_code == 413 and "--max-conversation-tokens" in r.json()["detail"]
    r = httpx.post(f"{url}/score", content=b"x" * 300_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "--max-request-mb" in r.json()["detail"]
    assert httpx.post(f"{url}/score", json={"conversations": [[{"role": "robot", "content": "hi"}]]}).status_code == 422
    r = httpx.post(f"{url}/score_candidates", json={"conversation": convs[0], "actions": ["a"]})
    assert r.status_code == 422  # ends in an assistant turn
    # the client does not retry a 4xx and reports it as an error
    with pytest.raises(RewardModelError, match="HTTP 413"):
        RemoteRewardModel(url, chunk=100).score([convs[0]] * 65)
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_server_down_is_an_error_never_a_score(prm_dir, convs):
    app = create_prm_app(PRMScorer.load(prm_dir))
    with serve_in_thread(app) as url:
        remote = load_reward_model(url)  # --rm http://... goes through the same loader as a PRM dir
        assert isinstance(remote, RemoteRewardModel) and remote.name == "agentprm"  # the served model's name
        assert len(remote.score(convs[:2])) == 2
    remote.backoff = 0.01
    with pytest.raises(RewardModelError, match="ConnectError"):
        remote.score(convs[:2])
    with pytest.raises(UserError, match="serve-prm"):
        load_reward_model(url)


def test_beam_search_through_the_server_equals_in_process(server, local):
    url, _ = server
    # The server keeps no per-node keys/values, so compare with in-process re-scoring (same PRM tokens).
    cfg = BeamConfig(beam_width=2, expansions=2, temperature=0.7, seed=1, prm_call="score", reuse_rm_state=False)
    tasks = make_env().task_ids("test", 3)
    a = beam_search(KeyedPolicy(0.5), local, make_env, tasks, cfg)
    b = beam_search(KeyedPolicy(0.5), RemoteRewardModel(url), make_env, tasks, cfg)
    for x, y in zip(a, b, strict=True):
        assert [s.output for s in x.trajectory.steps] == [s.output for s in y.trajectory.steps]
        assert x.scores == pytest.approx(y.scores, abs=1e-5)
        assert x.compute.prm_tokens == y.compute.prm_tokens


def test_scoring_failure_is_a_500_with_the_reason(prm_dir, convs):
    scorer = PRMScorer.load(prm_dir)

    def broken(encoded):
        raise RuntimeError("CUDA out of memory (simulated)")

    scorer.score_encoded = broken
    with serve_in_thread(create_prm_app(scorer)) as url:
        r = httpx.post(f"{url}/score", json={"conversations": convs[:1]})
        assert r.status_code == 500 and "out of memory" in r.json()["detail"]
        with pytest.raises(RewardModelError, match="HTTP 500"):
            RemoteRewardModel(url, backoff=0.01, retries=2).score(convs[:1])
        assert httpx.get(f"{url}/health").json()["errors"] >= 3
