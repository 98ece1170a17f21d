"""Stages on a real local Ray cluster (2 CPUs, 127.0.0.1, no dashboard) give the in-process results at
the same seeds, append to the same resumable JSONL, and a rerun after a killed driver duplicates nothing."""

import json

import pytest

ray = pytest.importorskip("ray", reason="Ray is the `ray` extra: pip install -e '.[ray]' to run these")

from agentprm.labels.run import mc_label_records  # noqa: E402
from agentprm.policy.hf import HFPolicy  # noqa: E402
from agentprm.rollout.engine import RolloutConfig  # noqa: E402
from agentprm.rollout.jobs import rollout_tasks  # noqa: E402
from agentprm.scale.ray_jobs import (  # noqa: E402
    MCLabelStage,
    RayOptions,
    RolloutStage,
    SearchStage,
    mc_label_on_ray,
    rollout_on_ray,
    search_on_ray,
)
from agentprm.search.loading import load_reward_model  # noqa: E402
from agentprm.search.runner import SearchSpec, run_search  # noqa: E402
from agentprm.testing.fakes import ScriptedEnv  # noqa: E402
from agentprm.testing.policies import tiny_policy_dir  # noqa: E402
from agentprm.trajectory import read_trajectories  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    ray.init(
        num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False
    )
    yield RayOptions(workers=2)
    ray.shutdown()


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    return tiny_policy_dir(tmp_path_factory.mktemp("ray") / "policy", hidden=32, layers=2)


def _by_id(path):
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids)), "duplicated records"
    return {r["id"]: r for r in recs}


def test_collect_and_search_on_ray_equal_in_process_and_resume(cluster, policy_dir, tmp_path):
    tasks = ScriptedEnv().task_ids("train", 6)
    cfg = RolloutConfig(temperature=1.0, max_new_tokens=12, batch_size=8)
    policy = HFPolicy.load(str(policy_dir), batch_size=8)
    local = tmp_path / "local.jsonl"
    rollout_tasks(policy, ScriptedEnv, tasks, local, n_per_task=3, cfg=cfg, seed=7)
    want = _by_id(local)
    assert len(want) == 18 and len({json.dumps(r["steps"]) for r in want.values()}) > 9  # varied samples

    # a driver killed mid-run: some trajectories written, the last line torn
    dist = tmp_path / "ray.jsonl"
    lines = local.read_text().splitlines()
    dist.write_text("\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    stage = RolloutStage(
        policy=str(policy_dir), env_factory=ScriptedEnv, batch_size=8, temperature=1.0, max_new_tokens=12, seed=7
    )
    summary = rollout_on_ray(stage, tasks, 3, dist, cluster, shard_size=4)
    assert (summary.written, summary.skipped) == (13, 5)
    got = _by_id(dist)
    assert got == want  # every trajectory equal to the in-process run's, none twice

    # search (best-of-n with a seeded random scorer) through the same driver
    spec = SearchSpec("bon", "3", max_new_tokens=12, seed=3)
    rm = load_reward_model("random:1")
    s_local = tmp_path / "search_local.jsonl"
    run_search(policy, rm, ScriptedEnv, tasks[:4], spec, s_local, chunk_size=2)
    s_ray = tmp_path / "search_ray.jsonl"
    sstage = SearchStage(
        policy=str(policy_dir),
        env_factory=ScriptedEnv,
        batch_size=8,
        rm="random:1",
        spec={"strategy": "bon", "budget": "3", "max_new_tokens": 12, "seed": 3},
        config={**spec.to_dict()},
    )
    recs = search_on_ray(sstage, tasks[:4], s_ray, cluster, chunk_size=2)
    assert len(recs) == 4
    a, b = _by_id(s_local), _by_id(s_ray)
    assert a.keys() == b.keys()
    for k in a:
        assert (
            a[k]["steps"] == b[k]["steps"]
            and a[k]["meta"]["search"]["candidates"] == b[k]["meta"]["search"]["candidates"]
        )

    # MC labels: same rollouts, same labels and token costs
    trajs = read_trajectories(local)[:2]
    kw = dict(n_mc=2, temperature=1.0, max_new_tokens=12, seed=5)
    want_mc = {r.trajectory_id: r.to_dict() for r in mc_label_records(trajs, ScriptedEnv, policy, **kw)}
    mc_out = tmp_path / "mc.jsonl"
    mc_label_on_ray(
        MCLabelStage(policy=str(policy_dir), env_factory=ScriptedEnv, batch_size=8, **kw),
        trajs,
        mc_out,
        cluster,
        shard_size=1,
    )
    got_mc = {json.loads(line)["trajectory_id"]: json.loads(line) for line in mc_out.read_text().splitlines()}
    assert got_mc == want_mc


def test_max_rounds_on_ray_ends_episodes_at_the_cap_as_in_process(cluster, policy_dir, tmp_path):
    """`--max-rounds` with `--ray`: the workers build their envs through `EnvSpec.maker(max_rounds)` as the
    in-process command does, so a capped collect and greedy search give the same trajectories."""
    from typer.testing import CliRunner

    from agentprm.cli import app

    def invoke(*args):
        r = CliRunner().invoke(app, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        return r

    # TextCraft's own cap is 20 rounds; the untrained policy never finishes a task, so every episode runs to the cap
    common = ["--policy", policy_dir, "--env", "textcraft", "--max-new-tokens", 6, "--max-rounds", 2]
    collect = [*common, "--split", "train", "--n-tasks", 2, "--n-per-task", 2, "--batch-size", 4, "--threads", 1]
    invoke("collect", *collect, "--out", tmp_path / "local.jsonl")
    invoke("collect", *collect, "--out", tmp_path / "ray.jsonl", "--ray", "auto", "--ray-workers", 2)
    want, got = _by_id(tmp_path / "local.jsonl"), _by_id(tmp_path / "ray.jsonl")
    assert len(want) == 4 and got == want
    assert {(len(t["steps"]), t["status"]) for t in got.values()} == {(2, "max_rounds")}

    search = [*common, "--strategy", "greedy", "--split", "test", "--n", 2, "--chunk", 1]
    invoke("search", *search, "--out", tmp_path / "s_local.jsonl")
    invoke("search", *search, "--out", tmp_path / "s_ray.jsonl", "--ray", "auto", "--ray-workers", 2)
    a, b = _by_id(tmp_path / "s_local.jsonl"), _by_id(tmp_path / "s_ray.jsonl")
    assert a.keys() == b.keys() and len(a) == 2
    assert all(a[k]["steps"] == b[k]["steps"] and a[k]["status"] == b[k]["status"] == "max_rounds" for k in a)
    assert {len(t["steps"]) for t in b.values()} == {2}


def test_bf16_reaches_the_policy_every_ray_worker_loads(monkeypatch, tmp_path):
    """`--bf16` with `--ray`: the job's RolloutStage carries the dtype, each worker's load call receives it,
    and a worker holding an fp32 replica reloads (the dtype is part of its load key)."""
    import agentprm.policy.vllm as backends
    from agentprm.cli.policy_cmds import RolloutJob

    job = dict(what="collect", policy=tmp_path, env="textcraft", split="train", n_tasks=1, n_per_task=1)
    job.update(temperature=1.0, max_new_tokens=8, max_rounds=0, batch_size=4, seed=0, threads=0, ray="auto")
    job.update(out=tmp_path / "o.jsonl")
    bf16, fp32 = RolloutJob(**job, bf16=True).ray_stage(), RolloutJob(**job, bf16=False).ray_stage()
    assert (bf16.dtype, fp32.dtype) == ("bfloat16", None)
    assert bf16.load_key() != fp32.load_key()
    calls = []
    monkeypatch.setattr(backends, "load_policy_backend", lambda path, backend, **kw: calls.append(kw))
    bf16.load_policy(), fp32.load_policy()
    assert calls == [{"batch_size": 4, "dtype": "bfloat16"}, {"batch_size": 4}]  # fp32: HFPolicy's default
    assert RolloutJob(**job, bf16=True, backend="vllm").ray_stage().dtype is None  # as in process: hf only


def test_bf16_collect_on_ray_equals_bf16_in_process(cluster, policy_dir, tmp_path):
    """The workers sample from the bf16 policy: `collect --bf16 --ray` writes the trajectories `collect --bf16`
    writes in process, which differ from the fp32 policy's at the same seeds."""
    from typer.testing import CliRunner

    from agentprm.cli import app

    def collect(out, *extra):
        args = ["collect", "--policy", policy_dir, "--env", "textcraft", "--n-tasks", 4, "--n-per-task", 8]
        args += ["--max-new-tokens", 12, "--max-rounds", 3, "--batch-size", 16, "--threads", 1, "--out", out, *extra]
        r = CliRunner().invoke(app, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        return _by_id(out)

    fp32, bf16 = collect(tmp_path / "fp32.jsonl"), collect(tmp_path / "bf16.jsonl", "--bf16")
    assert fp32 != bf16  # the dtype changes what is sampled, so the Ray run below can tell which one it got
    assert collect(tmp_path / "ray.jsonl", "--bf16", "--ray", "auto", "--ray-workers", 2) == bf16
