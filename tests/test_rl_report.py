"""Figure 5 from RL run folders (rl/report.py): runs found, seeds aggregated, plot written."""

import json

from agentprm.rl.report import aggregate, find_rl_runs, rl_section


def _run(root, label, seed, env, vals, complete=True):
    d = root / "rl" / f"{label}-s{seed}"
    d.mkdir(parents=True)
    (d / "rl_config.json").write_text(
        json.dumps({"config": {"seed": seed, "env": env}, "label": label, "env": env, "complete": complete})
    )
    rows = [{"iteration": i + 1, "test_success": v, "test_reward": v / 2} for i, v in enumerate(vals)]
    rows.insert(1, {"iteration": 99, "test_success": None, "test_reward": None})  # a non-eval iteration
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rl_section(tmp_path):
    assert rl_section([tmp_path], tmp_path / "plots") == []
    _run(tmp_path, "agentprm", 0, "textcraft", [0.1, 0.3])
    _run(tmp_path, "agentprm", 1, "textcraft", [0.3, 0.5, 0.9])
    _run(tmp_path, "outcome", 0, "babyai", [0.2], complete=False)
    runs = find_rl_runs([tmp_path])
    assert {(r.label, r.seed) for r in runs} == {("agentprm", 0), ("agentprm", 1), ("outcome", 0)}
    pts = aggregate([r for r in runs if r.label == "agentprm"], "success")
    assert pts == {1: (0.2, 0.1, 0.3, 2), 2: (0.4, 0.3, 0.5, 2)}  # iteration 3: only one seed has it
    babyai = aggregate([r for r in runs if r.env == "babyai"], "reward")
    assert babyai == {1: (0.1, 0.1, 0.1, 1)}  # BabyAI's metric is mean reward
    lines = rl_section([tmp_path], tmp_path / "plots")
    text = "\n".join(lines)
    assert "| agentprm | 2 (2) | 0.200 @1 | 0.400 [0.300, 0.500] @2 |" in text
    assert "| outcome | 1 (0) |" in text
    assert (tmp_path / "plots" / "rl_textcraft.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "rl_babyai.png").is_file()
