"""Tokens per observation, action and conversation under the tiny policy's two tokenizers (word vs phrase).

    PYTHONPATH=src python benchmarks/tokenizer_length.py --env babyai --demos 200 [--out demos.jsonl]

Runs the env's expert on the first N train tasks (appending to --out: a rerun reuses them as they are,
thought style included; new ones get the pipeline's thought style for the env unless --thought-style),
trains both tokenizers on the same successful demos exactly as `agentprm sft --base tiny` does (`policy/tiny.build_tokenizer`), and prints
for each: the vocabulary reached (BPE tokens, without the system prompt's added token), tokens per
observation (user turns after the system prompt), per action (assistant turns after the "OK."), per
conversation (the whole chat-templated demo: what SFT and the PRM pay), as mean and p95; whether every
text decodes back to itself; the ratio of mean tokens per observation; and last
`token ratio (word/phrase): N.Nx` (mean tokens per conversation).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def p95(xs: list[int]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[-1] if len(xs) > 1 else float(xs[0])


def lengths(tokenizer, convs) -> dict[str, list[int]]:
    from agentprm.conversation import ACK, tokenize_conversation

    def n(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    obs = [n(m["content"]) for c in convs for m in c[2:] if m["role"] == "user"]
    act = [n(m["content"]) for c in convs for m in c if m["role"] == "assistant" and m["content"] != ACK]
    conv = [len(tokenize_conversation(tokenizer, c).input_ids) for c in convs]
    return {"observation": obs, "action": act, "conversation": conv}


def lossless(tokenizer, convs) -> bool:
    texts = [m["content"] for c in convs for m in c[1:]]
    return all(tokenizer.decode(tokenizer(t, add_special_tokens=False)["input_ids"]) == t for t in texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="babyai", help="babyai | textcraft | webshop | math (any registered env)")
    parser.add_argument("--demos", type=int, default=200, help="expert episodes on the first N train tasks")
    parser.add_argument("--out", type=Path, default=None, help="demos JSONL to write or reuse (default: a temp file)")
    parser.add_argument("--thought-style", default=None, help="expert thoughts (default: the pipeline's for --env)")
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=1, help="expert processes")
    args = parser.parse_args()

    from agentprm.envs.demos import run_expert
    from agentprm.pipeline import ENV_DEFAULTS, PipelineConfig
    from agentprm.policy.sft import load_demo_conversations
    from agentprm.policy.tiny import TinyPolicyConfig, build_tokenizer

    style = args.thought_style or ENV_DEFAULTS.get(args.env, {}).get("thought_style", PipelineConfig.thought_style)
    out = args.out or Path(tempfile.mkdtemp()) / f"{args.env}.jsonl"
    t0 = time.perf_counter()
    # Failures kept in the file too (only successes are used), so a rerun does not retry them.
    s = run_expert(args.env, "train", args.demos, out, thought_style=style, workers=args.workers, keep_failures=True)
    print(
        f"{args.env}: {s.ok} of {s.tried} new demos succeeded ({s.skipped} reused) in {time.perf_counter() - t0:.0f} s"
    )
    convs, _ = load_demo_conversations(out, max_demos=args.demos)
    print(f"{len(convs)} successful demos, thought style {style}, vocab_size {args.vocab_size}")

    import transformers  # noqa: F401 - imported before the timings below, not inside the first

    means: dict[str, dict[str, float]] = {}
    for merge in ("word", "phrase"):
        t0 = time.perf_counter()
        tok = build_tokenizer(convs, TinyPolicyConfig(vocab_size=args.vocab_size, tokenizer_merge=merge))
        took = time.perf_counter() - t0
        lens = lengths(tok, convs)
        vocab = tok.backend_tokenizer.get_vocab_size(with_added_tokens=False)
        print(f"{merge}: vocab {vocab}, trained in {took:.1f} s, lossless {'yes' if lossless(tok, convs) else 'NO'}")
        for what, xs in lens.items():
            print(f"  tokens per {what:<12} mean {statistics.mean(xs):7.1f}  p95 {p95(xs):7.1f}  (n={len(xs)})")
        means[merge] = {what: statistics.mean(xs) for what, xs in lens.items()}
    w, p = means["word"], means["phrase"]
    print(f"per observation (word/phrase): {w['observation'] / p['observation']:.2f}x")
    print(f"token ratio (word/phrase): {w['conversation'] / p['conversation']:.1f}x")


if __name__ == "__main__":
    main()
