import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from agentprm.conversation import to_agentgym
from agentprm.trajectory import (
    SCHEMA_VERSION,
    Compute,
    JsonlWriter,
    Step,
    Trajectory,
    export_parquet,
    iter_jsonl,
    read_trajectories,
    write_trajectories,
)


def make_traj(i: int = 0, n_steps: int = 2) -> Trajectory:
    steps = [
        Step(
            t=t,
            observation=f"obs {t}",
            output=f"Thought: t{t}\nAction: get {t} stick",
            action=f"get {t} stick",
            reward=1.0 if t == n_steps - 1 else 0.0,
            done=t == n_steps - 1,
            prompt_tokens=10 + t,
            generated_tokens=5,
        )
        for t in range(n_steps)
    ]
    return Trajectory(
        id=f"traj{i}",
        env="textcraft",
        task_id=f"textcraft_{i}",
        system_prompt="SYS",
        first_observation="obs 0",
        steps=steps,
        reward=1.0,
        success=True,
        status="done",
        compute=Compute(policy_prompt_tokens=21, policy_generated_tokens=10, env_steps=n_steps),
        labels={"pvm": [1.0] * n_steps},
    )


def test_round_trip(tmp_path):
    p = tmp_path / "t.jsonl"
    trajs = [make_traj(i) for i in range(3)]
    write_trajectories(p, trajs)
    back = read_trajectories(p)
    assert back == trajs
    assert back[0].schema_version == SCHEMA_VERSION


def test_newer_schema_refused():
    d = make_traj().to_dict()
    d["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="newer"):
        Trajectory.from_dict(d)


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    p = tmp_path / "t.jsonl"
    write_trajectories(p, [make_traj(0), make_traj(1)])
    with open(p, "a") as fh:
        fh.write(make_traj(2).to_json()[:40])  # a writer killed mid-record
    assert [t.id for t in read_trajectories(p)] == ["traj0", "traj1"]
    # appending after the crash must not glue the new record onto the torn one
    with JsonlWriter(p) as w:
        w.write(make_traj(3))
    assert [t.id for t in read_trajectories(p)] == ["traj0", "traj1", "traj3"]


def test_corrupt_middle_line_is_an_error(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(make_traj(0).to_json() + "\n{broken\n" + make_traj(1).to_json() + "\n")
    with pytest.raises(ValueError, match="line 2"):
        list(iter_jsonl(p))


def test_kill_9_loses_at_most_the_record_in_flight(tmp_path):
    p = tmp_path / "t.jsonl"
    script = textwrap.dedent(f"""
        import sys
        from agentprm.trajectory import JsonlWriter
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_trajectory import make_traj
        with JsonlWriter({str(p)!r}) as w:
            for i in range(10**6):
                w.write(make_traj(i, n_steps=20))
                if i == 50:
                    print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    trajs = read_trajectories(p)
    assert len(trajs) >= 51
    assert [t.id for t in trajs] == [f"traj{i}" for i in range(len(trajs))]


def test_agentgym_export():
    conv = to_agentgym(make_traj(7))
    assert conv["item_id"] == "textcraft_7"
    c = conv["conversations"]
    assert [m["from"] for m in c] == ["human", "gpt", "human", "gpt", "human", "gpt"]
    assert c[0]["value"] == "SYS" and c[1]["value"] == "OK." and c[2]["value"] == "obs 0"
    assert c[4]["value"] == "obs 1" and c[5]["value"].endswith("get 1 stick")
    assert [m["loss"] for m in c] == [False, True, False, True, False, True]
    json.dumps(conv)


def test_parquet_export(tmp_path):
    import pyarrow.parquet as pq

    export_parquet([make_traj(0, 3), make_traj(1, 2)], tmp_path / "t.parquet")
    table = pq.read_table(tmp_path / "t.parquet").to_pylist()
    assert len(table) == 5
    assert table[2]["t"] == 2 and table[2]["trajectory_id"] == "traj0" and table[2]["label_pvm"] == 1.0
    assert table[4]["action"] == "get 1 stick"
