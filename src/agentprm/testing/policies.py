"""Tiny real policies for tests: an HF dir built in code (no download), in a second or two.

`scripted_demos` gives expert trajectories of `ScriptedEnv`; `tiny_policy_dir` builds the embedded
default's architecture at toy size (tokenizer trained on those demos), optionally trains it a few
steps, and saves it as an HF dir that `HFPolicy.load` (and anything else) reads.
"""

from __future__ import annotations

from pathlib import Path

from agentprm.testing.fakes import ScriptedEnv
from agentprm.trajectory import Step, Trajectory


def scripted_demos(n: int = 16, split: str = "train") -> list[Trajectory]:
    """The optimal trajectories of `ScriptedEnv` tasks (type the words a, b, c, ... in order)."""
    env = ScriptedEnv()
    out = []
    for i, task in enumerate(env.task_ids(split, n)):
        obs = env.reset(task)
        traj = Trajectory(
            id=f"demo{i}", env=env.name, task_id=task, system_prompt=env.system_prompt, first_observation=obs
        )
        for t, word in enumerate(env.target):
            text = f"Thought: I type {word}.\nAction: {word}"
            res = env.step(word)
            traj.steps.append(Step(t, obs, text, word, res.reward, res.done))
            obs = res.observation
        traj.reward, traj.success, traj.status, traj.final_observation = 1.0, True, "done", obs
        out.append(traj)
    return out


def tiny_policy_dir(
    path: str | Path,
    *,
    train_steps: int = 0,
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    intermediate: int | None = None,
) -> Path:
    """Save a toy-size tiny policy (untrained, or SFT'd `train_steps` steps on scripted demos) to `path`.
    `intermediate`: the MLP width (default 2 x hidden; the embedded default's is 4 x hidden)."""
    from agentprm.conversation import trajectory_messages
    from agentprm.policy.sft import SFTConfig, train_sft
    from agentprm.policy.tiny import TinyPolicyConfig, build_tiny
    from agentprm.trajectory import write_trajectories

    path = Path(path)
    demos = scripted_demos()
    tiny = TinyPolicyConfig(
        hidden_size=hidden, num_layers=layers, num_heads=4, intermediate_size=intermediate or 2 * hidden, vocab_size=300
    )
    if train_steps:
        demo_file = path.with_name(path.name + "-demos.jsonl")
        write_trajectories(demo_file, demos)
        cfg = SFTConfig(max_steps=train_steps, epochs=1000, batch_size=8, lr=3e-3, warmup_steps=2, seed=seed, tiny=tiny)
        train_sft(demo_file, "tiny", path, cfg)
        return path
    model, tokenizer = build_tiny([trajectory_messages(t) for t in demos], tiny, seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
