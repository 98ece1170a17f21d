"""AgentGym protocol: our client against our server (and a faulty one), compared with in-process envs.

Servers bind 127.0.0.1 on a free port in a daemon thread and stop at the end of their block (and after
a lifetime in any case). Envs under test: every registered env, plus a test-only scripted env; later
envs are covered automatically.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agentprm.envs import REGISTRY, EnvSpec, get_spec, make_env, register
from agentprm.envs.agentgym import (
    SERVERS,
    AgentGymEnv,
    NondeterministicServerError,
    RetryPolicy,
    ServerReportedError,
    dialect_for,
    parse_target,
)
from agentprm.envs.agentgym.dialects import State
from agentprm.errors import EnvError, UserError
from agentprm.serve import create_app, default_protocol, serve_in_thread
from agentprm.serve.runner import bind
from agentprm.testing.fake_agentgym import FaultPlan, NumberedScriptedEnv, with_faults
from agentprm.trajectory import read_trajectories
from tests.cli_helpers import run_main

REPO = Path(__file__).resolve().parents[1]
FAST = RetryPolicy(retries=2, backoff_s=0.01, timeout_s=5.0, connect_timeout_s=1.0)

SCRIPTLINE = EnvSpec(
    name="scriptline",
    factory="agentprm.testing.fake_agentgym:NumberedScriptedEnv",
    expert="agentprm.testing.fake_agentgym:scripted_expert",
    description="test-only scripted env with AgentGym-style ids",
    expert_observation_only=True,
)


@pytest.fixture(autouse=True, scope="module")
def _scriptline_registered():
    """The test-only env is in the registry for this module's tests only."""
    register(SCRIPTLINE)
    yield
    REGISTRY.pop("scriptline", None)


def _built_envs() -> list[str]:
    # Every registered env, each built once here: one that fails to import fails the module loudly
    # rather than dropping out of the parametrisation.
    names = ["scriptline"]
    for name, spec in sorted(REGISTRY.items()):
        if name != "scriptline":
            spec.make().close()
            names.append(name)
    return names


ENVS = _built_envs()


def _spec(name: str) -> EnvSpec:
    return SCRIPTLINE if name == "scriptline" else REGISTRY[name]


def _protocol(name: str) -> str:
    return default_protocol(name) or "textcraft"


def _client_name(name: str, url: str) -> str:
    dialect = "env_idx" if _protocol(name) == "webshop" else "id"
    return f"agentgym:{name}+{dialect}@{url}"


def _actions(env, rng: random.Random, k: int) -> list[str]:
    """Actions to play: the env's own sampler where it has one, else generic strings."""
    if hasattr(env, "sample_action"):
        return [env.sample_action(rng) for _ in range(k)]
    return [rng.choice(["look", "inventory", "a", "b"]) for _ in range(k)]


# -- client vs in-process ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENVS)
def test_client_matches_in_process(name):
    spec = _spec(name)
    with serve_in_thread(create_app(spec.make, _protocol(name))) as url:
        remote = AgentGymEnv(_client_name(name, url), policy=FAST)
        local = spec.make()
        for i, task in enumerate(local.task_ids("test", 3)):
            rng = random.Random(i)
            assert remote.reset(task) == local.reset(task)
            for _ in range(min(local.max_rounds, 8)):
                (action,) = _actions(local, rng, 1)
                want, got = local.step(action), remote.step(action)
                assert (got.observation, got.reward, got.done) == (want.observation, want.reward, want.done)
                if want.done:
                    break
        assert remote.system_prompt == local.system_prompt
        assert remote.task_ids("train", 5) == local.task_ids("train", 5)
        remote.close()


@pytest.mark.parametrize("name", [n for n in ENVS if _spec(n).expert and _spec(n).expert_observation_only])
def test_expert_trajectories_match(name):
    spec = _spec(name)
    with serve_in_thread(create_app(spec.make, _protocol(name))) as url:
        remote_spec = get_spec(_client_name(name, url))
        remote, local = remote_spec.make(policy=FAST), spec.make()
        expert = remote_spec.make_expert()
        for task in local.task_ids("test", 3):
            assert _same(expert(remote, task, 0)) == _same(expert(local, task, 0))


def _same(traj) -> dict:
    """A trajectory without its id (experts may add a random suffix to keep ids unique across runs)."""
    d = traj.to_dict()
    d.pop("id")
    return d


@pytest.mark.parametrize("name", ENVS)
def test_clone_matches_in_process_clone(name):
    spec = _spec(name)
    with serve_in_thread(create_app(spec.make, _protocol(name))) as url:
        remote, local = AgentGymEnv(_client_name(name, url), policy=FAST), spec.make()
        task = local.task_ids("test", 1)[0]
        rng = random.Random(7)
        remote.reset(task), local.reset(task)
        for action in _actions(local, rng, 2):
            if local.step(action).done:
                pytest.skip("episode ended before the clone point")
            remote.step(action)
        # several clones of one state, stepped with different actions, plus the parent afterwards
        pairs = [(remote.clone(), local.clone()) for _ in range(3)]
        for r, lo in [*pairs, (remote, local)]:
            for action in _actions(lo, rng, 2):
                want, got = lo.step(action), r.step(action)
                assert (got.observation, got.reward, got.done) == (want.observation, want.reward, want.done)
                if want.done:
                    break
        for r, _ in pairs:
            r.close()


def test_clone_of_scripted_env_reaches_goal_in_both_branches():
    with serve_in_thread(create_app(NumberedScriptedEnv, "textcraft")) as url:
        env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=FAST)
        env.reset("scriptline_3")  # 4 words: a b c d
        env.step("a"), env.step("b")
        twin = env.clone()
        assert env.step("c").observation == "Good. 3 typed."
        assert twin.step("x").observation == "Wrong word 'x'."  # twin replays a, b on its own id
        assert twin.step("c").observation == "Good. 3 typed."
        assert env.step("d").done and twin.step("d").done


def test_prefix_cache_avoids_replay_from_zero():
    """Copy-on-write clones and ids parked by close() spare replays; counted as steps the server served."""
    steps = {"n": 0}

    class Counting(NumberedScriptedEnv):
        def step(self, action):
            steps["n"] += 1
            return super().step(action)

    def served(fn) -> int:
        before = steps["n"]
        fn()
        return steps["n"] - before

    with serve_in_thread(create_app(Counting, "textcraft")) as url:
        env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=FAST)
        env.reset("scriptline_11")  # 4 words: a b c d
        env.step("a"), env.step("b")
        p, s = env.clone(), env.clone()
        assert served(lambda: s.step("c")) == 1  # the first sharer to step takes the id: no replay
        assert served(lambda: p.step("c")) == 3  # p's state is gone from that id: replays a, b from zero
        s2 = s.clone()
        assert s.step("d").done  # s keeps the id; s2 (at a b c) is left without one
        p.close()  # parks p's id, which is at a b c
        assert served(lambda: s2.step("d")) == 1  # reuses the parked id: nothing replayed
        assert served(lambda: env.step("c")) == 3  # env (at a b) had no cached prefix: full replay


# -- error paths on a faulty server -------------------------------------------------------------------------------


@pytest.fixture()
def faulty():
    plan = FaultPlan()
    with serve_in_thread(with_faults(create_app(NumberedScriptedEnv, "textcraft"), plan)) as url:
        yield plan, url


def _dead_url() -> str:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


def test_unreachable_server_is_one_line_with_url_and_hint():
    url = _dead_url()
    with pytest.raises(UserError) as e:
        make_env(f"agentgym:textcraft@{url}", policy=FAST)
    msg = str(e.value)
    assert url in msg and "agentprm serve-env --env textcraft" in msg and "\n" not in msg


def test_server_down_mid_episode_is_env_error():
    env = AgentGymEnv(f"agentgym:scriptline+id@{_dead_url()}", policy=FAST, check_server=False)
    with pytest.raises(EnvError, match="cannot reach"):
        env.reset("scriptline_0")


def test_error_body_is_env_error(faulty):
    plan, url = faulty
    env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=FAST)
    env.reset("scriptline_1")
    plan.add("/step", "error")
    with pytest.raises(ServerReportedError, match="injected failure"):
        env.step("a")


def test_finished_task_error_text(faulty):
    _, url = faulty
    env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=FAST)
    env.reset("scriptline_0")  # 1 word
    assert env.step("a").done
    with pytest.raises(EnvError, match="has finished"):
        env.step("a")


def test_422_is_env_error(faulty):
    plan, url = faulty
    env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=FAST)
    env.reset("scriptline_1")
    plan.add("/step", "422")
    with pytest.raises(EnvError, match="422"):
        env.step("a")


def test_503_and_reset_timeout_are_retried(faulty):
    plan, url = faulty
    policy = RetryPolicy(retries=2, backoff_s=0.01, timeout_s=0.3, connect_timeout_s=1.0)
    env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=policy)
    plan.add("/reset", "sleep:1.0", "503")
    assert env.reset("scriptline_1") == "Type 2 words. Next: ?"
    plan.add("/step", "503")
    assert env.step("a").observation == "Good. 1 typed."


@pytest.mark.parametrize("fault", ["lost", "sleep:1.0", "500"])
def test_step_with_unknown_outcome_recovers_by_replay(faulty, fault):
    """A step whose answer is lost is never re-sent on the same id (it may have been applied)."""
    plan, url = faulty
    policy = RetryPolicy(retries=2, backoff_s=0.01, timeout_s=0.3, connect_timeout_s=1.0)
    env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=policy)
    env.reset("scriptline_2")  # 3 words
    assert env.step("a").observation == "Good. 1 typed."
    plan.add("/step", fault)
    # re-sending "b" on the same id after "lost" would be harmless here, but "a" after "a" is not:
    got = env.step("b")
    assert got.observation == "Good. 2 typed."
    assert env.step("c").done


def test_persistent_5xx_on_step_gives_env_error_after_retries(faulty):
    plan, url = faulty
    env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=FAST)
    env.reset("scriptline_1")
    plan.add("/step", *["500"] * 20)
    with pytest.raises(EnvError, match="gave up after 3 attempts"):
        env.step("a")


@pytest.mark.parametrize("protocol", ["textcraft", "webshop"])
def test_evicted_id_is_recovered_by_replay(protocol):
    with serve_in_thread(create_app(NumberedScriptedEnv, protocol, max_envs=1)) as url:
        family = "env_idx" if protocol == "webshop" else "id"
        env = AgentGymEnv(f"agentgym:scriptline+{family}@{url}", policy=FAST)
        env.reset("scriptline_2")
        env.step("a")
        httpx.post(f"{url}/create", json={})  # max_envs=1: evicts env's id (WebShop then answers 404)
        assert env.step("b").observation == "Good. 2 typed."


def test_nondeterministic_server_is_detected():
    counter = {"n": 0}

    class Drifting(NumberedScriptedEnv):
        def reset(self, task_id):
            counter["n"] += 1
            return super().reset(task_id) + f" (episode {counter['n']})"

    with serve_in_thread(create_app(Drifting, "textcraft")) as url:
        env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=FAST)
        env.reset("scriptline_2")
        env.step("a")
        twin = env.clone()
        env.step("b")  # env keeps the shared id; twin must replay on a new one
        with pytest.raises(NondeterministicServerError, match="not deterministic"):
            twin.step("b")


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_each_dialect_parses_its_own_answers(server):
    """Client parsing and server answers come from one `Dialect`: each reads back what it writes."""
    d = SERVERS[server]
    st = State("You see a door.", 0.5, 1.5, True)
    assert d.parse_create(d.create_answer(7, st), "w") == 7
    assert d.parse_reset(d.reset_answer(7, st), "w") == "You see a door."
    got = d.parse_step(d.step_answer(7, st), "w")
    assert (got.observation, got.reward, got.done, got.info) == ("You see a door.", 0.5, True, {})
    assert set(d.reset_request(7, 3)) == {d.id_key, d.index_key} and d.step_request(7, "go")[d.id_key] == 7
    assert d.close_request(7) == {d.id_key: 7}
    assert dialect_for(server, d.family) is d
    with pytest.raises(EnvError):
        d.parse_step({"error": "x"}, "w")


# -- server behaviour -----------------------------------------------------------------------------------------------


def test_server_bounds_live_ids_and_evicts_idle():
    app = create_app(NumberedScriptedEnv, "babyai", max_envs=2, idle_seconds=3600)
    table = app.state.table
    with serve_in_thread(app) as url:
        ids = [httpx.post(f"{url}/create").json()["id"] for _ in range(3)]
        assert len(table) == 2
        assert httpx.post(f"{url}/reset", json={"id": ids[0], "data_idx": 1}).json() == {
            "error": f"The id {ids[0]} is not valid."
        }
        assert "observation" in httpx.post(f"{url}/reset", json={"id": ids[2], "data_idx": 1}).json()
        table.idle_seconds = 0.0
        time.sleep(0.01)
        httpx.post(f"{url}/create")
        assert len(table) == 1


def test_protocol_shapes_match_agentgym():
    """Endpoints and response shapes as `../shared/envs.md` §5 describes them, per protocol."""
    with serve_in_thread(create_app(NumberedScriptedEnv, "textcraft")) as url, httpx.Client(base_url=url) as c:
        assert c.get("/").json() == "This is environment scriptline."
        missing = c.post("/create")
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body"]
        created = c.post("/create", json={}).json()
        assert set(created) == {"id", "observation", "done", "reward"}
        sid = created["id"]
        assert set(c.post("/reset", json={"id": sid, "data_idx": 0}).json()) == {"id", "observation", "done", "reward"}
        assert c.get("/observation", params={"id": sid}).json() == "Type 1 words. Next: ?"
        assert set(c.post("/step", json={"id": sid, "action": "a"}).json()) == {"observation", "reward", "done"}
        assert c.post("/step", json={"id": sid, "action": "a"}).json() == {
            "error": f"The task with environment {sid} has finished."
        }
        assert set(c.get("/detail", params={"id": sid}).json()) == {"observation", "done", "reward", "deleted"}
        assert c.post("/step", json={"id": "x", "action": "a"}).status_code == 422
        assert c.post("/close", json={"id": sid}).json() is True
        assert c.post("/close", json={"id": sid}).json() is False
    with serve_in_thread(create_app(NumberedScriptedEnv, "babyai")) as url, httpx.Client(base_url=url) as c:
        sid = c.post("/create").json()["id"]
        assert set(c.post("/reset", json={"id": sid, "data_idx": 0}).json()) == {
            "observation",
            "reward",
            "score",
            "deleted",
            "done",
        }
        assert set(c.get("/observation", params={"id": sid}).json()) == {
            "observation",
            "reward",
            "score",
            "deleted",
            "done",
        }
        assert c.post("/step", json={"id": sid, "action": "a"}).json() == {
            "observation": "Done!",
            "reward": 1.0,
            "score": 1.0,
            "done": True,
        }
    with serve_in_thread(create_app(NumberedScriptedEnv, "webshop")) as url, httpx.Client(base_url=url) as c:
        assert c.get("/").json() == "ok"
        idx = c.post("/create").json()
        assert isinstance(idx, int) and c.get("/list_envs").json() == [idx]
        assert c.post("/reset", json={"env_idx": idx, "session_id": 1}).json() == ["Type 2 words. Next: ?", None]
        assert c.post("/step", json={"env_idx": idx, "action": "a"}).json() == {
            "state": "Good. 1 typed.",
            "reward": 0.0,
            "done": False,
            "info": None,
        }
        assert c.get("/observation", params={"env_idx": idx}).json() == "Good. 1 typed."
        # Two gaps of upstream WebShop closed: /close exists, and bad ids answer a status AgentGym's client checks
        bad = idx + 1
        r = c.post("/reset", json={"env_idx": bad, "session_id": 1})
        assert (r.status_code, r.json()) == (404, {"error": f"The id {bad} is not valid."})
        assert c.post("/step", json={"env_idx": bad, "action": "a"}).status_code == 404
        assert c.get("/observation", params={"env_idx": bad}).status_code == 404
        assert c.post("/close", json={"env_idx": idx}).json() is True
        assert c.post("/close", json={"env_idx": idx}).json() is False and c.get("/list_envs").json() == []


class _EightTasks(NumberedScriptedEnv):
    def reset(self, task_id):
        if int(task_id.rsplit("_", 1)[1]) >= 8:
            raise UserError(f"unknown task {task_id!r}")
        return super().reset(task_id)


def test_webshop_unknown_session_id_fails_at_reset_for_both_clients():
    """AgentGym's WebShop client asserts HTTP 200 on reset: an unknown session id must fail there (404), and
    our client reports the server's message; a known one still works on the same env id."""
    with serve_in_thread(create_app(_EightTasks, "webshop")) as url:
        with httpx.Client(base_url=url) as c:
            idx = c.post("/create").json()
            r = c.post("/reset", json={"env_idx": idx, "session_id": 8})
            assert r.status_code == 404 and "unknown task 'scriptline_8'" in r.json()["error"]
            assert c.post("/reset", json={"env_idx": idx, "session_id": 7}).status_code == 200
        env = AgentGymEnv(f"agentgym:scriptline+env_idx@{url}", policy=FAST)
        with pytest.raises(ServerReportedError, match="unknown task 'scriptline_8'"):
            env.reset("scriptline_8")
        assert env.reset("scriptline_7") == "Type 4 words. Next: ?"
        assert env.step("a").observation == "Good. 1 typed."


def test_eight_concurrent_clients_lose_no_step():
    lock, served = threading.Lock(), {"n": 0}

    class Counting(NumberedScriptedEnv):
        def step(self, action):
            with lock:
                served["n"] += 1
            return super().step(action)

    episodes, errors, sent = 12, [], {"n": 0}
    with serve_in_thread(create_app(Counting, "textcraft")) as url:

        def client(w: int) -> None:
            env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=FAST)
            try:
                for e in range(episodes):
                    i = w * episodes + e
                    k = 1 + i % 4
                    env.reset(f"scriptline_{i}")
                    env.step("z")  # a wrong word: changes nothing
                    for j, word in enumerate("abcd"[:k]):
                        res = env.step(word)
                        assert res.done == (j == k - 1), (w, e, j)
                    with lock:
                        sent["n"] += k + 1
                env.close()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors
    assert sent["n"] == served["n"] > 0


# -- names and CLI --------------------------------------------------------------------------------------------------


def test_target_names():
    assert parse_target("agentgym:webshop@http://127.0.0.1:36003/").dialect == "env_idx"
    assert parse_target("agentgym:maze+id@http://h:1").url == "http://h:1"
    with pytest.raises(UserError, match=r"textcraft \(id\).*webshop \(env_idx\)"):
        parse_target("agentgym:alfworld@http://127.0.0.1:1")
    with pytest.raises(UserError, match="http://HOST:PORT"):
        parse_target("agentgym:textcraft@127.0.0.1:1")
    with pytest.raises(UserError, match="agentgym:<name>@"):
        get_spec("agentgym:textcraft")


def test_unknown_local_env_needs_explicit_ids():
    with serve_in_thread(create_app(NumberedScriptedEnv, "textcraft")) as url:
        env = AgentGymEnv(f"agentgym:notours+id@{url}", policy=FAST)
        with pytest.raises(UserError, match="give task ids explicitly"):
            env.task_ids("test")
        assert env.parse_action("Thought: x\nAction: go, north!") == "go, north"
        with pytest.raises(UserError, match="notours_<i>"):
            env.reset("scriptline_1")


@pytest.mark.parametrize("name", [n for n in ENVS if _spec(n).expert and _spec(n).expert_observation_only])
def test_demos_through_server_equal_in_process(tmp_path, name):
    """`agentprm demos --env agentgym:<name>@URL` writes the trajectories `--env <name>` writes."""
    from agentprm.cli import app

    runner = CliRunner()
    local_out, remote_out = tmp_path / "local.jsonl", tmp_path / "remote.jsonl"
    r = runner.invoke(app, ["demos", "--env", name, "--split", "test", "--n", "4", "--out", str(local_out)])
    assert r.exit_code == 0, r.output
    with serve_in_thread(create_app(_spec(name).make, _protocol(name))) as url:
        args = ["demos", "--env", _client_name(name, url), "--split", "test", "--n", "4", "--out", str(remote_out)]
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    local, remote = read_trajectories(local_out), read_trajectories(remote_out)
    assert len(local) == 4 and [_same(t) for t in remote] == [_same(t) for t in local]


def test_serve_env_cli_subprocess():
    """`agentprm serve-env` in a subprocess (bounded by --lifetime), driven by our client."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    code = (
        "from agentprm.envs import register, EnvSpec;"
        "register(EnvSpec(name='scriptline', factory='agentprm.testing.fake_agentgym:NumberedScriptedEnv', description='t'));"
        "from agentprm.cli import main; main()"
    )
    cmd = [
        sys.executable,
        "-c",
        code,
        "serve-env",
        "--env",
        "scriptline",
        "--protocol",
        "babyai",
        "--port",
        str(port),
        "--lifetime",
        "30",
    ]
    proc = subprocess.Popen(
        cmd, env={**os.environ, "PYTHONPATH": str(REPO / "src")}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):  # bounded wait for start-up
            try:
                httpx.get(url + "/", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        env = AgentGymEnv(f"agentgym:scriptline+id@{url}", policy=FAST)
        assert env.reset("scriptline_1") == "Type 2 words. Next: ?"
        assert env.step("a").observation == "Good. 1 typed."
        assert env.step("b").done
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_env_bad_input():
    code, err = run_main(["serve-env", "--env", "scriptline"])
    assert (
        code == 2 and err == "agentprm: error: choose --protocol for 'scriptline': one of textcraft, babyai, webshop\n"
    )


def test_serve_env_port_in_use_is_one_line():
    sock = bind("127.0.0.1", 0)
    sock.listen()
    port = sock.getsockname()[1]
    try:
        code, err = run_main(
            ["serve-env", "--env", "scriptline", "--protocol", "babyai", "--port", str(port), "--lifetime", "5"]
        )
    finally:
        sock.close()
    assert (
        code == 2 and err.count("\n") == 1 and f"cannot bind 127.0.0.1:{port}" in err and "choose another --port" in err
    )
