"""Shared fixtures for the PRM tests: tiny Llama backbones built from a config, scripted trajectories."""

from __future__ import annotations

import random
from pathlib import Path

from agentprm.conversation import trajectory_messages
from agentprm.policy.tokenizer import train_chat_tokenizer
from agentprm.testing.fakes import WORDS, ScriptedEnv
from agentprm.trajectory import Compute, Step, Trajectory


def scripted_trajectory(
    task_id: str, p_correct: float, rng: random.Random, max_rounds: int = 6, i: int = 0
) -> Trajectory:
    """A rollout on ScriptedEnv where each turn types the right word with probability p_correct."""
    env = ScriptedEnv(max_rounds=max_rounds)
    obs = env.reset(task_id)
    traj = Trajectory(
        id=f"{task_id}#{i}",
        env="scripted",
        task_id=task_id,
        system_prompt=env.system_prompt,
        first_observation=obs,
        status="max_rounds",
    )
    for t in range(max_rounds):
        word = env.target[env.pos] if rng.random() < p_correct else rng.choice("xyz")
        output = f"Thought: I type {word}.\nAction: {word}"
        res = env.step(word)
        traj.steps.append(
            Step(
                t=t,
                observation=obs,
                output=output,
                action=word,
                reward=res.reward,
                done=res.done,
                generated_tokens=len(output.split()) + 1,
            )
        )
        obs = res.observation
        if res.done:
            traj.status = "done"
            break
    traj.final_observation = obs
    traj.reward = traj.steps[-1].reward
    traj.success = traj.reward >= 1.0
    traj.compute = Compute(
        policy_generated_tokens=sum(s.generated_tokens for s in traj.steps), env_steps=traj.num_steps
    )
    return traj


def scripted_dataset(n: int, seed: int = 0, ps: tuple[float, ...] = (0.3, 0.7, 1.0)) -> list[Trajectory]:
    """n scripted rollouts; ps = (0, 1) makes the outcome readable from the first action (learnable)."""
    rng = random.Random(seed)
    ids = ScriptedEnv(n_train=8).task_ids("train")
    return [scripted_trajectory(ids[i % len(ids)], rng.choice(ps), rng, i=i) for i in range(n)]


def tiny_tokenizer():
    texts = [
        f"Thought: I type {w}.\nAction: {w} Wrong word Good typed Done! Type words. Next: ?" for w in WORDS + "xyz"
    ]
    texts.append(ScriptedEnv.system_prompt + " OK.")
    return train_chat_tokenizer(texts * 3, vocab_size=400)


def tiny_backbone_dir(
    path: Path, tokenizer=None, hidden: int = 32, layers: int = 2, seed: int = 0, max_positions: int = 1024
) -> Path:
    """A randomly initialised LlamaForCausalLM (the shape of the SFT policy dir) saved with its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer or tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max_positions,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def messages(traj: Trajectory, upto: int | None = None):
    return trajectory_messages(traj, upto)


def tiny_prm_dir(path: Path, seed: int = 3) -> Path:
    """A tiny PRM dir (untrained backbone, random non-zero head: scores differ per step) as train-prm saves it."""
    import torch

    from agentprm.prm.model import PRMMeta, ValueHeadPRM

    tok = tiny_tokenizer()
    backbone = tiny_backbone_dir(path.with_name(path.name + "-backbone"), tok)
    model = ValueHeadPRM.from_backbone(backbone)
    torch.manual_seed(seed)
    torch.nn.init.normal_(model.head.weight, std=0.5)
    model.save(path, tok, PRMMeta())
    return path
