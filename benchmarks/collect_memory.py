"""Resident memory of a long collect on a real env: trajectories stream to disk, memory stays flat.

`rollout_tasks` appends each trajectory to the JSONL as it ends and keeps none; the policy's prefix store
(earlier rounds' keys/values) is bounded by bytes, and so is the decoder's pool of key/value buffers
(`--pool-mib`, default `fastgen.POOL_MAX_BYTES`). Both fill during warm-up and then stay within their
bound, so what RSS still gains after warm-up is glibc's heap: freed store entries below its (dynamic)
mmap threshold leave holes there. `--mmap-threshold-mib N` fixes that threshold (`memory.set_mmap_threshold`,
as `agentprm collect --mmap-threshold-mib` does), so entries of N MiB or more go back to the kernel when
evicted.

The policy: `--policy DIR` (e.g. a pipeline's runs/NAME/policy), else an untrained policy of the tiny
default's shape (h128, 4 layers, MLP 512) whose tokenizer is trained on 20 expert demos of the env. An
untrained policy emits 32-token junk actions, so every episode runs all `--max-rounds` turns: the
longest conversations, the worst case for the prefix store and the buffers.

One setting:

    PYTHONPATH=src python benchmarks/collect_memory.py --env babyai --n 10000
    PYTHONPATH=src python benchmarks/collect_memory.py --env textcraft --n 10000 --mmap-threshold-mib 1

Two settings side by side (`--compare A B`, each `default` or comma-joined `mmap=MIB`, `pool=MIB`): one
subprocess per setting, one after the other, same policy, tasks and seeds (so the same trajectories),
each fresh in its own dir under `--dir`; then a table and the last line `speed-up: N.Nx` (B's
trajectories/s over A's, whole collect):

    PYTHONPATH=src python benchmarks/collect_memory.py --env babyai --n 10000 --policy runs/default/policy \\
        --compare default mmap=1

A single run goes to `--dir` (default /tmp/agentprm-collect-memory-ENV; `--fresh` empties it), resumes
its JSONL (warm-up restarts from there) and reuses the built policy. It prints the prefix store's and
the pool's bounds, RSS after warm-up, a line every `--every` trajectories (RSS, store, pool, glibc's
free heap and mmapped bytes, trajectories/s), the peak RSS (`VmHWM`), `rss growth after warm-up: X MiB`
(RSS at the end minus RSS after warm-up), and last a `result {json}` line (what `--compare` reads).

`rollout_tasks` also trims glibc's free heap once it passes `--heap-trim-mib` (default 256; `trim=0` in a
setting turns that off): the cheap alternative to the fixed threshold, compared side by side with

    PYTHONPATH=src python benchmarks/collect_memory.py --env babyai --n 2000 --policy runs/default/policy \\
        --threads 2 --compare trim=0 default
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from agentprm.envs import get_spec
from agentprm.memory import HEAP_TRIM_MIB, heap_free_mib, mmapped_mib, peak_rss_mib, rss_mib, set_mmap_threshold
from agentprm.policy.fastgen import describe_pool, pool_bound, pooled_bytes, set_pool_bound
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


SETTING_OPTIONS = {"mmap": "--mmap-threshold-mib", "pool": "--pool-mib", "trim": "--heap-trim-mib"}


def setting_args(setting: str) -> list[str]:
    """`default` | comma-joined `mmap=MIB`, `pool=MIB`, `trim=MIB` -> this script's options for it."""
    if setting == "default":
        return []
    out: list[str] = []
    for part in setting.split(","):
        key, _, value = part.partition("=")
        if key not in SETTING_OPTIONS or not value.isdigit():
            raise SystemExit(f"setting {setting!r}: use `default` or comma-joined mmap=MIB, pool=MIB, trim=MIB")
        out += [SETTING_OPTIONS[key], value]
    return out


def compare(args: argparse.Namespace, passthrough: list[str]) -> None:
    """Run each setting in its own subprocess (a fresh allocator and a fresh peak), one after the other."""
    root = args.dir or Path(f"/tmp/agentprm-collect-memory-{args.env}")
    root.mkdir(parents=True, exist_ok=True)
    policy_dir = args.policy or build_policy(args.env, root / "policy")
    # The default setting must be glibc's default: no inherited MALLOC_* variables in either child.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    results: dict[str, dict] = {}
    for setting in args.compare:
        cmd = [sys.executable, __file__, *passthrough, "--policy", str(policy_dir), "--fresh"]
        cmd += ["--dir", str(root / setting.replace(",", "_").replace("=", "")), *setting_args(setting)]
        print(f"== {setting}: load average {os.getloadavg()[0]:.1f}; {' '.join(cmd[1:])}", flush=True)
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("result "):
                    results[setting] = json.loads(line[len("result ") :])
                print(f"[{setting}] {line}", end="", flush=True)
        if proc.returncode or setting not in results:
            raise SystemExit(f"setting {setting} failed (exit {proc.returncode})")
    a, b = (results[s] for s in args.compare)
    rows = [
        ("RSS after warm-up (MiB)", "rss_warm_mib", ".0f"),
        ("RSS at the end (MiB)", "rss_end_mib", ".0f"),
        ("peak RSS (MiB)", "peak_rss_mib", ".0f"),
        ("growth after warm-up (MiB)", "growth_mib", "+.0f"),
        ("glibc free heap at the end (MiB)", "heap_free_mib", ".0f"),
        ("glibc mmapped at the end (MiB)", "mmapped_mib", ".0f"),
        ("pooled KV buffers at the end (MiB)", "pool_mib", ".0f"),
        ("trajectories/s (whole collect)", "traj_s", ".2f"),
        ("trajectories/s (after warm-up)", "traj_s_after_warmup", ".2f"),
    ]
    print(f"\n{'':36} {args.compare[0]:>14} {args.compare[1]:>14}")
    for name, key, fmt in rows:
        print(f"{name:36} {format(a[key], fmt):>14} {format(b[key], fmt):>14}")
    print(f"{a['written']} trajectories each ({args.env}); load average now {os.getloadavg()[0]:.1f}")
    print(f"speed-up: {b['traj_s'] / a['traj_s']:.1f}x")


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
    ap.add_argument("--pool-mib", type=int, help="KV buffer pool bound in MiB (default: fastgen.POOL_MAX_BYTES)")
    ap.add_argument("--mmap-threshold-mib", type=int, default=0, help="fix glibc's mmap threshold (0: glibc's)")
    ap.add_argument(
        "--heap-trim-mib",
        type=int,
        default=HEAP_TRIM_MIB,
        help=f"trim glibc's free heap past N MiB (0: never; default {HEAP_TRIM_MIB}, rollout_tasks's)",
    )
    ap.add_argument("--warmup", type=int, default=0, help="trajectories before the baseline (0: a tenth, >= 2 batches)")
    ap.add_argument("--every", type=int, default=0, help="progress line every N trajectories (0: a twentieth)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compare", nargs=2, metavar="SETTING", help="run two settings side by side (see above)")
    args = ap.parse_args()
    if args.compare:
        # what the children share: every option but these (a setting's own options come last and win)
        own = {"--compare", "--dir", "--policy", "--fresh"}
        shared = [
            a
            for k, v in vars(args).items()
            if v is not None and f"--{k.replace('_', '-')}" not in own
            for a in (f"--{k.replace('_', '-')}", str(v))
        ]
        return compare(args, shared)
    if args.mmap_threshold_mib:
        set_mmap_threshold(args.mmap_threshold_mib << 20)
    if args.pool_mib is not None:
        set_pool_bound(args.pool_mib << 20)
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
    assert store is not None  # HFPolicy.load's default: fast generation with the store
    mmap = f"fixed at {args.mmap_threshold_mib} MiB" if args.mmap_threshold_mib else "glibc's dynamic default"
    print(
        f"collect {todo} {args.env} trajectories ({have} already in {out}), {n_tasks} tasks x {args.n_per_task}, "
        f"policy {policy_dir}, batch {args.batch}, <= {args.max_rounds} turns of <= {args.max_new_tokens} tokens, "
        f"{args.threads} thread(s); mmap threshold {mmap}; "
        + (f"free heap trimmed past {args.heap_trim_mib} MiB" if args.heap_trim_mib else "free heap never trimmed")
    )
    print(store.describe())
    print(describe_pool())
    print(f"RSS at start {rss_mib():.0f} MiB; warm-up {warmup} trajectories; a line every {every}", flush=True)
    t0 = time.perf_counter()
    warm: dict[str, float] = {}

    def line(k: int) -> str:
        return (
            f"RSS {rss_mib():7.1f} MiB  store {store.bytes / 2**20:6.1f}/{store.max_bytes / 2**20:.0f} MiB "
            f"({len(store)} entries)  pool {pooled_bytes() / 2**20:6.1f}/{pool_bound() / 2**20:.0f} MiB  "
            f"heap free {heap_free_mib():6.1f} MiB  mmapped {mmapped_mib():6.1f} MiB  "
            f"{k / max(time.perf_counter() - t0, 1e-9):.2f} traj/s"
        )

    def on_done(traj, s) -> None:
        k = s.written
        if k == min(warmup, todo):
            warm.update(rss=rss_mib(), t=time.perf_counter(), k=k)
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
        heap_trim_mib=args.heap_trim_mib,
    )
    t1 = time.perf_counter()
    end = rss_mib()
    print(
        f"{summary.written} trajectories in {t1 - t0:.0f} s (statuses {summary.statuses}); "
        f"{out.stat().st_size / 2**20:.1f} MiB on disk; RSS at the end {end:.1f} MiB"
    )
    print(f"peak RSS: {peak_rss_mib():.1f} MiB")
    growth = end - warm["rss"] if warm else float("nan")
    print(f"rss growth after warm-up: {growth:+.1f} MiB" if warm else "rss growth after warm-up: n/a (no warm-up)")
    after = summary.written - warm.get("k", 0)
    result = {
        "written": summary.written,
        "seconds": t1 - t0,
        "traj_s": summary.written / max(t1 - t0, 1e-9),
        "traj_s_after_warmup": after / max(t1 - warm["t"], 1e-9) if warm and after else float("nan"),
        "rss_warm_mib": warm.get("rss", float("nan")),
        "rss_end_mib": end,
        "peak_rss_mib": peak_rss_mib(),
        "growth_mib": growth,
        "heap_free_mib": heap_free_mib(),
        "mmapped_mib": mmapped_mib(),
        "pool_mib": pooled_bytes() / 2**20,
        "pool_bound_mib": pool_bound() / 2**20,
        "store_bound_mib": store.max_bytes / 2**20,
        "mmap_threshold_mib": args.mmap_threshold_mib,
        "heap_trim_mib": args.heap_trim_mib,
    }
    print(f"result {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main()
