"""Resident memory of a long collect on a real env: trajectories stream to disk, memory stays flat.

`rollout_tasks` appends each trajectory to the JSONL as it ends and keeps none; the policy's prefix store
(earlier rounds' keys/values) is bounded by bytes, and the decoder's pooled key/value buffers by count
(2, the largest seen). Both fill during warm-up and then stay at their bound, so RSS after warm-up
should stay flat: a slow climb that stops is allocator caching, a steady climb a leak.

The policy: `--policy DIR` (e.g. a pipeline's runs/NAME/policy), else an untrained policy of the tiny
default's shape (h128, 4 layers, MLP 512) whose tokenizer is trained on 20 expert demos of the env. An
untrained policy emits 32-token junk actions, so every episode runs all `--max-rounds` turns: the
longest conversations, the worst case for the prefix store and the buffers.

    PYTHONPATH=src python benchmarks/collect_memory.py --env babyai --n 10000
    PYTHONPATH=src python benchmarks/collect_memory.py --env textcraft --n 10000

Output goes to `--dir` (default /tmp/agentprm-collect-memory-ENV; `--fresh` empties it). A rerun resumes
the JSONL (the episodes already written are skipped; warm-up restarts from there) and reuses the built
policy. Prints the prefix store's bound once, RSS after warm-up, a progress line every `--every`
trajectories (RSS, store, pooled buffers, glibc's free heap), the peak RSS; last line:
`rss growth after warm-up: X MiB` (RSS at the end minus RSS after warm-up).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch

from agentprm.envs import get_spec
from agentprm.memory import heap_free_mib, peak_rss_mib, rss_mib
from agentprm.policy.fastgen import pooled_bytes
from agentprm.policy.hf import HFPolicy
from agentprm.rollout import RolloutConfig
from agentprm.rollout.jobs import rollout_tasks
from agentprm.rollout_io import done_ids


def build_policy(env_name: str, path: Path) -> Path:
    """An untrained policy of the tiny default's shape, tokenizer trained on 20 expert demos of the env."""
    if (path / "config.json").is_file():
        return path
    from agentprm.conversation import trajectory_messages
    from agentprm.envs.demos import make_expert
    from agentprm.policy.hf import quiet_transformers
    from agentprm.policy.tiny import TinyPolicyConfig, build_tiny

    quiet_transformers()
    env = get_spec(env_name).make()
    expert = make_expert(env_name)
    demos = [expert(env, t, 0) for t in env.task_ids("train", 20)]
    model, tokenizer = build_tiny([trajectory_messages(d) for d in demos], TinyPolicyConfig(), seed=0)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", choices=("babyai", "textcraft"), default="babyai")
    ap.add_argument("--n", type=int, default=10000, help="trajectories to collect")
    ap.add_argument("--n-per-task", type=int, default=16)
    ap.add_argument("--policy", type=Path, help="a policy dir (default: an untrained tiny policy built here)")
    ap.add_argument("--dir", type=Path, help="output dir (default /tmp/agentprm-collect-memory-ENV)")
    ap.add_argument("--fresh", action="store_true", help="empty --dir first (no resume)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-rounds", type=int, default=10, help="the pipeline default's cap")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--store-mb", type=int, default=0, help="prefix store bound in MiB (0: the default budget)")
    ap.add_argument("--warmup", type=int, default=0, help="trajectories before the baseline (0: a tenth, >= 2 batches)")
    ap.add_argument("--every", type=int, default=0, help="progress line every N trajectories (0: a twentieth)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = args.dir or Path(f"/tmp/agentprm-collect-memory-{args.env}")
    if args.fresh:
        shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    policy_dir = args.policy or build_policy(args.env, out_dir / "policy")
    kw = {"kv_store_bytes": args.store_mb << 20} if args.store_mb else {}
    policy = HFPolicy.load(policy_dir, batch_size=args.batch, **kw)
    spec = get_spec(args.env)
    maker = spec.maker(args.max_rounds)
    train = maker().task_ids("train")
    n_tasks = -(-args.n // args.n_per_task)
    if n_tasks > len(train):
        raise SystemExit(
            f"--n {args.n} needs {n_tasks} tasks x {args.n_per_task}; {args.env} has {len(train)}: raise --n-per-task"
        )
    tasks = train[:n_tasks]
    out = out_dir / "trajectories.jsonl"
    have = len(done_ids(out))
    todo = n_tasks * args.n_per_task - have
    warmup = args.warmup or max(todo // 10, 2 * args.batch)
    every = args.every or max(todo // 20, 1)
    store = policy.prefix_store
    print(
        f"collect {todo} {args.env} trajectories ({have} already in {out}), {n_tasks} tasks x {args.n_per_task}, "
        f"policy {policy_dir}, batch {args.batch}, <= {args.max_rounds} turns of <= {args.max_new_tokens} tokens, "
        f"{args.threads} thread(s)"
    )
    print(f"prefix store bound: {store.max_bytes / 2**20:.0f} MiB ({store!r}); pooled KV buffers: at most 2 per thread")
    print(f"RSS at start {rss_mib():.0f} MiB; warm-up {warmup} trajectories; a line every {every}", flush=True)
    t0 = time.perf_counter()
    base: list[float] = []

    def line(k: int) -> str:
        return (
            f"RSS {rss_mib():7.1f} MiB  store {store.bytes / 2**20:6.1f}/{store.max_bytes / 2**20:.0f} MiB "
            f"({len(store)} entries)  pool {pooled_bytes() / 2**20:6.1f} MiB  heap free {heap_free_mib():6.1f} MiB  "
            f"{k / max(time.perf_counter() - t0, 1e-9):.1f} traj/s"
        )

    def on_done(traj, s) -> None:
        k = s.written
        if k == min(warmup, todo):
            base.append(rss_mib())
            print(f"after warm-up ({k} trajectories): {line(k)}", flush=True)
        elif k % every == 0 or k == todo:
            print(f"{k:>7}/{todo} trajectories: {line(k)}", flush=True)

    summary = rollout_tasks(
        policy,
        maker,
        tasks,
        out,
        n_per_task=args.n_per_task,
        cfg=RolloutConfig(temperature=1.0, max_new_tokens=args.max_new_tokens, batch_size=args.batch),
        on_done=on_done,
    )
    end = rss_mib()
    print(
        f"{summary.written} trajectories in {time.perf_counter() - t0:.0f} s (statuses {summary.statuses}); "
        f"{out.stat().st_size / 2**20:.1f} MiB on disk; RSS at the end {end:.1f} MiB"
    )
    print(f"peak RSS: {peak_rss_mib():.1f} MiB")
    print(
        f"rss growth after warm-up: {end - base[0]:+.1f} MiB" if base else "rss growth after warm-up: n/a (no warm-up)"
    )


if __name__ == "__main__":
    main()
