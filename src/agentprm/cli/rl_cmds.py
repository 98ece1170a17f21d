"""`agentprm rl`: turn-level PPO with outcome or reward-model rewards; thin over `rl/ppo.py`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from agentprm.cli.common import progress
from agentprm.cli.root import app


@app.command()
def rl(
    policy: Annotated[Path, typer.Option(help="SFT policy dir (the start point and the frozen KL reference).")],
    out: Annotated[
        Path, typer.Option(help="Run dir: checkpoint, metrics.jsonl, rollouts/, eval/, policy/ (a rerun resumes).")
    ],
    env: Annotated[str | None, typer.Option(help="Environment name (`agentprm envs`).")] = None,
    reward: Annotated[
        str | None,
        typer.Option(help="outcome (env reward only) | prm (the --rm model's step scores, shaped by --shaping)."),
    ] = None,
    rm: Annotated[
        str | None, typer.Option(help="Reward model: a PRM/ORM dir (runs/NAME/prm/agentprm), or random.")
    ] = None,
    shaping: Annotated[
        str | None,
        typer.Option(
            help="With --reward prm: potential (default: γQ_t − Q_{t−1}, policy-invariant) | dense (Q_t) | progress (Q_t − Q_{t−1}) | min (PURE min-form). See docs/rl.md."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="YAML of PPOConfig fields (an `rl:` mapping or the whole file), e.g. configs/rl-babyai.yaml; flags override it."
        ),
    ] = None,
    iterations: Annotated[int | None, typer.Option(help="PPO iterations.")] = None,
    tasks_per_iter: Annotated[int | None, typer.Option(help="Training tasks sampled per iteration.")] = None,
    episodes_per_task: Annotated[int | None, typer.Option(help="Episodes per sampled task.")] = None,
    lr: Annotated[float | None, typer.Option(help="Policy learning rate.")] = None,
    critic_lr: Annotated[float | None, typer.Option(help="Critic learning rate.")] = None,
    kl_coef: Annotated[
        float | None, typer.Option(help="KL penalty to the SFT reference (in the loss, k3 estimator).")
    ] = None,
    entropy_coef: Annotated[float | None, typer.Option(help="Entropy bonus.")] = None,
    critic_init: Annotated[
        str | None, typer.Option(help="auto (prm when --rm is a PRM dir, else policy) | prm | policy.")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Curve name in the report (default: outcome or the --rm dir's name).")
    ] = None,
    eval_every: Annotated[
        int | None, typer.Option(help="Greedy test-split eval every N iterations (0: never).")
    ] = None,
    eval_tasks: Annotated[int | None, typer.Option(help="Test tasks per eval.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Token cap per assistant turn.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every N iterations.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (tasks, sampling, minibatch order).")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda.")] = None,
) -> None:
    """Turn-level PPO (GAE over turns, clipped loss on each turn's tokens, KL to the SFT policy, entropy bonus)."""
    from agentprm.rl.ppo import PPOConfig, is_complete, run_rl

    cfg = PPOConfig.load(
        config,
        env=env,
        reward=reward,
        shaping=shaping,
        iterations=iterations,
        tasks_per_iter=tasks_per_iter,
        episodes_per_task=episodes_per_task,
        lr=lr,
        critic_lr=critic_lr,
        kl_coef=kl_coef,
        entropy_coef=entropy_coef,
        critic_init=critic_init,
        label=label,
        eval_every=eval_every,
        eval_tasks=eval_tasks,
        max_new_tokens=max_new_tokens,
        checkpoint_every=checkpoint_every,
        seed=seed,
        threads=threads,
        device=device,
    )
    if is_complete(out):
        print(f"{out} holds a finished RL run; remove it (or give another --out) to train again")
        return
    lines = not sys.stdout.isatty()  # logs and pipes get one line per iteration
    with progress() as bar:
        job = bar.add_task(
            f"rl {cfg.reward}" + (f"/{cfg.shaping}" if cfg.reward == "prm" else ""), total=cfg.iterations, status=""
        )

        def on_iteration(m, total: int) -> None:
            test = f"  test {m.test_success:.2f}" if m.test_success is not None else ""
            if m.iteration == 0:  # the SFT policy's greedy test score, before any update
                if lines:
                    print(f"start (iteration 0):{test or '  test n/a'}  ({m.seconds:.0f}s)", flush=True)
                return
            status = (
                f"succ {m.success_rate:.2f}  KL {m.kl:.4f}  L_pi {m.policy_loss:.3f}  L_V {m.value_loss:.3f}"
                f"  err {m.env_error + m.policy_error + m.rm_error}{test}"
            )
            bar.update(job, completed=m.iteration, status=status)
            if lines:
                print(f"iteration {m.iteration}/{total}: {status}  ({m.seconds:.0f}s)", flush=True)

        done = run_rl(policy, out, cfg, rm, on_iteration)
    print(f"trained {len(done)} iterations this call; wrote {out}/policy and {out}/metrics.jsonl")
