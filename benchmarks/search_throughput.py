"""Batched beam search against one task at a time: same tasks, same models, same settings.

The policy and reward model are tiny RANDOM HF Llamas built from a config in code (no download) with
the project's tiny ChatML tokenizer trained on the scripted env's text. `agentprm.policy.hf` (HFPolicy)
and the trained PRM are not on this branch yet, so this script carries a minimal Policy adapter (HF
`generate`, left padding) and a minimal value-head RewardModel adapter of its own; after they land the
benchmark should use them. Random weights make every episode run to the round limit with full-length
turns, so both sides do identical work and the ratio measures batching alone.

    PYTHONPATH=src python benchmarks/search_throughput.py [--tasks 16] [--beam 2x2]

The last line is `speed-up: N.Nx` (tasks/s batched over tasks/s one task at a time).
"""

from __future__ import annotations

import argparse
import time

import torch

from agentprm.conversation import Message, tokenize_conversation
from agentprm.policy.base import Generation
from agentprm.policy.tokenizer import train_chat_tokenizer
from agentprm.prm.base import StepScores
from agentprm.search import BeamConfig, beam_search
from agentprm.testing import ScriptedEnv


def tiny_llama(vocab: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


class BenchPolicy:
    """Minimal Policy over HF generate (benchmark-local; HFPolicy replaces it once on main)."""

    name = "tiny-random-llama"

    def __init__(self, model, tok):
        self.model, self.tok = model, tok
        self.model.generation_config.pad_token_id = tok.pad_token_id
        self.model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")

    @torch.no_grad()
    def generate(self, conversations, *, n=1, temperature=1.0, max_new_tokens=128, seed=None):
        if seed is not None:
            torch.manual_seed(seed)
        texts = [self.tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        out = self.model.generate(**enc, do_sample=temperature > 0, temperature=temperature or None, top_k=0,
                                  max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, num_return_sequences=n)
        new = out[:, enc["input_ids"].shape[1]:]
        lens = enc["attention_mask"].sum(1).tolist()
        res = []
        for i in range(len(conversations)):
            gens = []
            for j in range(n):
                ids = new[i * n + j].tolist()
                gens.append(Generation(self.tok.decode(ids, skip_special_tokens=True), int(lens[i]), len(ids)))
            res.append(gens)
        return res


class BenchRM:
    """Minimal value-head reward model: the score of step t is a linear head on the hidden state at the
    last token of assistant turn t+1; one padded forward pass per batch of conversations."""

    name = "tiny-random-prm"

    def __init__(self, model, tok):
        self.model, self.tok = model, tok
        self.head = torch.nn.Linear(model.config.hidden_size, 1).to(model.device)

    @torch.no_grad()
    def score(self, conversations: list[list[Message]]) -> list[StepScores]:
        toks = [tokenize_conversation(self.tok, c) for c in conversations]
        width = max(len(t.input_ids) for t in toks)
        ids = torch.full((len(toks), width), self.tok.pad_token_id)
        mask = torch.zeros((len(toks), width), dtype=torch.long)
        for i, t in enumerate(toks):  # right padding: turn positions stay as computed
            ids[i, : len(t.input_ids)] = torch.tensor(t.input_ids)
            mask[i, : len(t.input_ids)] = 1
        dev = self.model.device
        hidden = self.model.model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state
        values = self.head(hidden).squeeze(-1).cpu()
        return [
            StepScores([float(values[i, t.last_token_of_turn(k)]) for k in range(1, len(t.assistant_spans))], len(t.input_ids))
            for i, t in enumerate(toks)
        ]

    def score_candidates(self, conversation, actions):
        scored = self.score([[*conversation, {"role": "assistant", "content": a}] for a in actions])
        return StepScores([s.scores[-1] for s in scored], sum(s.tokens for s in scored))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--beam", default="2x2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    env0 = ScriptedEnv(max_rounds=args.rounds, n_test=args.tasks)
    corpus = [env0.system_prompt, "Thought: I type a.\nAction: a", "Wrong word. Good. typed Done! Type 4 words. Next: ?"] * 50
    tok = train_chat_tokenizer(corpus, vocab_size=400)
    policy = BenchPolicy(tiny_llama(len(tok), 0).to(args.device), tok)
    rm = BenchRM(tiny_llama(len(tok), 1).to(args.device), tok)
    tasks = env0.task_ids("test")
    n, m = (int(x) for x in args.beam.split("x"))
    cfg = BeamConfig(beam_width=n, expansions=m, max_new_tokens=args.max_new_tokens, seed=0)

    def make_env():
        return ScriptedEnv(max_rounds=args.rounds, n_test=args.tasks)

    beam_search(policy, rm, make_env, tasks[:1], cfg)  # warm-up
    t0 = time.perf_counter()
    batched = beam_search(policy, rm, make_env, tasks, cfg)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [r for t in tasks for r in beam_search(policy, rm, make_env, [t], cfg)]
    t_single = time.perf_counter() - t0

    gen_b = sum(r.compute.policy_generated_tokens for r in batched)
    gen_s = sum(r.compute.policy_generated_tokens for r in single)
    print(f"tasks {len(tasks)}, beam {args.beam}, {args.rounds} rounds, {args.max_new_tokens} new tokens a turn, {args.threads} thread(s), {args.device}")
    print(f"batched:        {t_batched:7.2f} s  {len(tasks) / t_batched:6.2f} tasks/s  ({gen_b} generated tokens)")
    print(f"one at a time:  {t_single:7.2f} s  {len(tasks) / t_single:6.2f} tasks/s  ({gen_s} generated tokens)")
    print(f"speed-up: {t_single / t_batched:.1f}x")


if __name__ == "__main__":
    main()
