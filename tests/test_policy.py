"""Policy backends: the fast generation path against plain HF forwards, seeds, the SFT loss mask, SFT resume."""

from __future__ import annotations

import json

import pytest
import torch

from agentprm.conversation import initial_messages
from agentprm.policy import fastgen
from agentprm.policy.fastgen import decode_batch
from agentprm.policy.hf import HFPolicy, row_seed
from agentprm.policy.sft import CKPT_DIR, IGNORE, SFTConfig, sft_example, train_sft
from agentprm.policy.tiny import TinyPolicyConfig
from agentprm.policy.tokenizer import train_chat_tokenizer
from agentprm.testing.policies import scripted_demos, tiny_policy_dir
from agentprm.trajectory import write_trajectories

torch.set_num_threads(1)  # tiny models: threads only contend on the shared CI cores


@pytest.fixture(scope="module")
def random_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.3,  # peaky logits: varied tokens
    )
    return LlamaForCausalLM(cfg).eval()


PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [20, 21, 22, 23], [40]]


def _recorder(rec: list, n: int):
    """An `on_logits` hook appending each row's next-token logits to rec[row]."""
    rec.extend([] for _ in range(n))

    def hook(rows, logits):
        for r, x in zip(rows, logits):
            rec[r].append(x.float().clone())

    return hook


def _full_forward_logits(model, prompt, generated):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + generated])).logits[0]
    return logits[len(prompt) - 1 : len(prompt) - 1 + len(generated)]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_fast_path_logits_match_plain_forward(random_llama, attn):
    random_llama.config._attn_implementation = attn
    try:
        rec: list = []
        out = decode_batch(
            random_llama,
            PROMPTS,
            max_new_tokens=10,
            stop_ids=list(range(12)),
            temperature=1.0,
            seeds=list(range(len(PROMPTS))),
            on_logits=_recorder(rec, len(PROMPTS)),
        )
    finally:
        random_llama.config._attn_implementation = "sdpa"
    assert any(d.finished for d in out) and any(not d.finished for d in out)  # rows dropped mid-batch
    for prompt, d, logits in zip(PROMPTS, out, rec):
        ref = _full_forward_logits(random_llama, prompt, d.tokens)
        assert len(logits) == len(d.tokens)
        assert torch.allclose(torch.stack(logits), ref, atol=1e-4), (torch.stack(logits) - ref).abs().max()


@pytest.mark.parametrize("attn,chunk", [("sdpa", 0), ("eager", 0), ("sdpa", 3), ("eager", 2)])
def test_reused_prefix_gives_the_plain_forward_logits(random_llama, attn, chunk, monkeypatch):
    """Round 2 of a conversation starts from round 1's stored keys/values (prompt + turn), encoding only
    the new tokens; the logits must be those of a plain forward over the whole sequence. `chunk` > 0
    forces the prefill into query chunks of that many slots, each over the rows that still need it."""
    if chunk:
        monkeypatch.setattr(fastgen, "PREFILL_SCORES", 1)
        monkeypatch.setattr(fastgen, "PREFILL_MIN_CHUNK", chunk)
    random_llama.config._attn_implementation = attn
    try:
        first = decode_batch(random_llama, PROMPTS, max_new_tokens=6, stop_ids=[3], temperature=0, keep_kv=True)
        seen = [list(p) + d.tokens[:-1] for p, d in zip(PROMPTS, first)]
        assert all(d.kv is not None and d.kv.ids == s for d, s in zip(first, seen))
        assert all(d.kv.keys[0].shape[1] == len(s) for d, s in zip(first, seen))
        # Next prompts: the whole turn, an "observation" of varying length; row 2 diverges inside the
        # stored turn (a re-tokenised turn), row 3 has no prefix at all.
        nxt = [list(p) + d.tokens + [50 + i] * (i + 1) for i, (p, d) in enumerate(zip(PROMPTS, first))]
        nxt[2] = list(PROMPTS[2]) + [60, 61, 62]
        prefixes = [d.kv for d in first[:3]] + [None]
        rec: list = []
        out = decode_batch(
            random_llama,
            nxt,
            max_new_tokens=8,
            stop_ids=[3],
            temperature=0,
            prefixes=prefixes,
            on_logits=_recorder(rec, len(nxt)),
            keep_kv=True,
        )
    finally:
        random_llama.config._attn_implementation = "sdpa"
    for prompt, d, logits in zip(nxt, out, rec):
        ref = _full_forward_logits(random_llama, prompt, d.tokens)
        assert torch.allclose(torch.stack(logits), ref, atol=1e-4), (torch.stack(logits) - ref).abs().max()
    plain = decode_batch(random_llama, nxt, max_new_tokens=8, stop_ids=[3], temperature=0)
    assert [d.tokens for d in out] == [d.tokens for d in plain]


def test_prefix_store_finds_the_longest_prefix_and_evicts_by_bytes():
    from agentprm.policy.fastgen import PrefixKV, PrefixStore

    def entry(ids, prompt_len):
        t = torch.zeros(2, len(ids), 4)
        return PrefixKV(list(ids), [t], [t.clone()], prompt_len=prompt_len)

    store = PrefixStore(max_bytes=5_500)
    assert store.lookup([1, 2, 3]) is None
    a, b = entry([1, 2, 3, 4], 2), entry([1, 2, 3, 4, 5, 6, 7], 5)
    store.add(a)
    store.add(b)
    assert store.lookup([1, 2, 3, 4, 5, 6, 7, 8]) is b  # whole sequence matched
    assert store.lookup([1, 2, 3, 4, 5, 9]) is b  # its prompt part matched; the turn differs
    assert store.lookup([1, 2, 3, 4, 9]) is a
    assert store.lookup([1, 2, 9]) is a  # a's prompt part
    assert store.lookup([9, 2, 3]) is None
    big = entry(range(100, 180), 80)  # 2 tensors * 2*80*4 floats * 4 bytes = 5120; a 256, b 448
    store.add(big)  # 5824 bytes > 5500: the least recently used entry (b) goes
    assert store.bytes == 256 + 5120
    assert store.lookup([1, 2, 3, 4, 5, 6, 7, 8]) is a and store.lookup(list(range(100, 181))) is big
    store.clear()
    assert len(store) == 0 and store.lookup([1, 2, 3, 4, 5, 6, 7]) is None
    # A superseded entry (its conversation's next round was stored) goes before older live ones.
    store = PrefixStore(max_bytes=900)
    old, other = entry([1, 2, 3], 3), entry([7, 8, 9], 3)  # 192 bytes each
    store.add(old)
    store.add(other)
    assert store.lookup([1, 2, 3, 4]) is old  # the newest use: LRU alone would evict `other` next
    store.add(entry([1, 2, 3, 4, 5, 6], 4))  # 384: old's conversation, one round on
    store.demote(old)
    store.add(entry([20, 21, 22], 3))  # 960 bytes > 900: one entry goes
    assert store.lookup([1, 2, 3, 9]) is None and store.lookup([7, 8, 9, 1]) is other


def test_fast_greedy_equals_naive_greedy_and_is_batch_independent(random_llama):
    def naive(prompt, k):
        ids, out = list(prompt), []
        for _ in range(k):
            with torch.no_grad():
                t = int(random_llama(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            out.append(t)
            ids.append(t)
            if t == 3:
                break
        return out

    batched = decode_batch(random_llama, PROMPTS, max_new_tokens=12, stop_ids=[3], temperature=0)
    for p, d in zip(PROMPTS, batched):
        assert d.tokens == naive(p, 12)
        assert d.tokens == decode_batch(random_llama, [p], max_new_tokens=12, stop_ids=[3])[0].tokens


def test_seeded_samples_do_not_depend_on_the_batch(random_llama):
    def sample(prompts, seeds):
        return [
            d.tokens
            for d in decode_batch(random_llama, prompts, max_new_tokens=8, stop_ids=[3], temperature=1.0, seeds=seeds)
        ]

    together = sample(PROMPTS, [11, 12, 13, 14])
    assert sample(PROMPTS, [11, 12, 13, 14]) == together
    assert sample(PROMPTS[2:3], [13]) == together[2:3]
    # Repeated prompts (n samples of one conversation) are prefilled once and sampled row by row.
    repeated = sample([PROMPTS[2], PROMPTS[0], PROMPTS[2]], [13, 11, 14])
    assert repeated[:2] == [together[2], together[0]]
    assert repeated[2] == sample(PROMPTS[2:3], [14])[0]
    assert sample(PROMPTS[:1], [99]) != together[:1] or sample(PROMPTS[:1], [98]) != together[:1]


def test_row_seed_is_stable_and_spreads():
    assert row_seed(0, 0) == row_seed(0, 0)
    assert len({row_seed(s, k) for s in range(20) for k in range(20)}) == 400
    assert all(0 <= row_seed(s, k) < 2**63 for s in (0, 2**40) for k in (0, 7))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_policy_dir(tmp_path_factory.mktemp("pol") / "policy", train_steps=40)


def test_hf_policy_generate_shapes_counts_and_modes(tiny_dir):
    pol = HFPolicy.load(tiny_dir, batch_size=3)
    env_convs = [initial_messages("Type words.", "Type " + "1 2 " * k + "words.") for k in range(1, 5)]
    gens = pol.generate(env_convs, n=2, temperature=1.0, max_new_tokens=6, seed=5)
    assert [len(g) for g in gens] == [2, 2, 2, 2]
    for conv, row in zip(env_convs, gens):
        for g in row:
            assert g.prompt_tokens == len(pol.prompt_ids(conv))
            assert 1 <= g.generated_tokens <= 6
            assert g.finished or g.generated_tokens == 6
    assert pol.generate(env_convs, n=2, temperature=1.0, max_new_tokens=6, seed=5) == gens
    # greedy: the fast path and HF's own generate (dynamic and static cache) agree
    fast = pol.generate(env_convs, temperature=0, max_new_tokens=6)
    assert all(g[0].text for g in fast)  # real text, not an empty special-token run
    for mode in ("hf", "hf-static"):
        pol.mode = mode
        assert pol.generate(env_convs, temperature=0, max_new_tokens=6) == fast


def _tok():
    texts = ["Type the words.", "Thought: I type a.\nAction: a", "Type 2 words.", "Good. 1 typed.", "OK."]
    return train_chat_tokenizer(texts * 5, vocab_size=300)


def test_sft_loss_mask_is_exactly_the_action_turns_and_their_end_token():
    tok = _tok()
    conv = [
        {"role": "user", "content": "Type the words."},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "Type 2 words."},
        {"role": "assistant", "content": "Thought: I type a.\nAction: a"},
        {"role": "user", "content": "Good. 1 typed."},
        {"role": "assistant", "content": "Action: b"},
    ]
    ids, labels = sft_example(tok, conv)
    assert len(ids) == len(labels)
    trained = [i for i, y in enumerate(labels) if y != IGNORE]
    assert all(labels[i] == ids[i] for i in trained)
    # two contiguous runs, each the turn's text followed by <|im_end|>
    runs, cur = [], [trained[0]]
    for i in trained[1:]:
        if i == cur[-1] + 1:
            cur.append(i)
        else:
            runs.append(cur)
            cur = [i]
    runs.append(cur)
    assert [tok.decode([ids[i] for i in r]) for r in runs] == [
        "Thought: I type a.\nAction: a<|im_end|>",
        "Action: b<|im_end|>",
    ]
    # the token before each run is the assistant header's newline: the model learns to start the turn
    assert tok.decode(ids[: runs[0][0]]).endswith("<|im_start|>assistant\n")
    _, with_ack = sft_example(tok, conv, train_on_ack=True)
    acked = [ids[i] for i, y in enumerate(with_ack) if y != IGNORE]
    assert tok.decode(acked).startswith("OK.<|im_end|>")


def test_sft_resume_after_crash_gives_the_uninterrupted_result(tmp_path):
    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos(12))
    tiny = TinyPolicyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, vocab_size=300)
    cfg = SFTConfig(max_steps=6, epochs=100, batch_size=4, warmup_steps=2, checkpoint_every=2, tiny=tiny)

    full = train_sft(demos, "tiny", tmp_path / "full", cfg)
    assert full.steps == 6 and full.num_demos == 12

    class Crash(Exception):
        pass

    def crash_at_5(step, total, loss):
        if step == 5:
            raise Crash

    with pytest.raises(Crash):
        train_sft(demos, "tiny", tmp_path / "resumed", cfg, on_step=crash_at_5)
    assert json.loads((tmp_path / "resumed" / CKPT_DIR / "trainer_state.json").read_text())["step"] == 4
    res = train_sft(demos, "tiny", tmp_path / "resumed", cfg)
    assert res.resumed_from == 4
    assert not (tmp_path / "resumed" / CKPT_DIR).exists()
    a = HFPolicy.load(tmp_path / "full").model.state_dict()
    b = HFPolicy.load(tmp_path / "resumed").model.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    meta = json.loads((tmp_path / "full" / "agentprm_policy.json").read_text())
    assert meta["env"] == "scripted" and meta["num_demos"] == 12
    assert full.num_truncated == 0 and "cut at max_length" not in full.summary()


def test_sft_counts_and_reports_demos_cut_at_max_length(tmp_path):
    from agentprm.conversation import trajectory_messages
    from agentprm.policy.tiny import build_tiny

    demos = tmp_path / "demos.jsonl"
    write_trajectories(demos, scripted_demos(6))
    tiny = TinyPolicyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, vocab_size=300)
    convs = [trajectory_messages(t) for t in scripted_demos(6)]
    _, tok = build_tiny(convs, tiny)  # the tokenizer SFT builds from the same demos
    lengths = [len(sft_example(tok, c)[0]) for c in convs]
    cut = sorted(lengths)[2]
    res = train_sft(demos, "tiny", tmp_path / "p", SFTConfig(max_steps=1, batch_size=2, max_length=cut, tiny=tiny))
    assert res.num_truncated == sum(n > cut for n in lengths) >= 1
    assert f"{res.num_truncated} of 6 demos cut at max_length" in res.summary()


def test_tiny_tokenizer_reads_the_system_prompt_as_one_token_and_round_trips():
    from agentprm.conversation import trajectory_messages
    from agentprm.policy.tiny import build_tiny

    convs = [trajectory_messages(t) for t in scripted_demos(6)]
    cfg = TinyPolicyConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, vocab_size=300)
    _, tok = build_tiny(convs, cfg)
    text = tok.apply_chat_template(convs[0], tokenize=False)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert convs[0][0]["content"] in tok.convert_ids_to_tokens(ids)
    _, plain = build_tiny(convs, TinyPolicyConfig(**{**cfg.__dict__, "system_prompt_token": False}))
    assert len(plain(text, add_special_tokens=False)["input_ids"]) > len(ids) + 5
    # any other text (a changed prompt) still tokenises, only longer
    other = "Type the secret words, please."
    assert tok.decode(tok(other, add_special_tokens=False)["input_ids"]) == other


def test_a_reused_kv_buffer_with_stale_nans_gives_the_plain_forward_logits(random_llama):
    """Decoding reuses its KV buffer across calls (`fastgen._POOL`); stale values, even NaN from a broken
    model, must not reach a later batch (pad slots are masked, but 0 x NaN is NaN)."""
    decode_batch(random_llama, PROMPTS, max_new_tokens=12, stop_ids=[], temperature=0)  # fills the pool
    free = fastgen._POOL._free()
    assert free, "the buffer was not handed back"
    with torch.inference_mode():  # the pooled buffers are inference tensors
        for t in free:
            t.fill_(float("nan"))
    rec: list = []
    out = decode_batch(
        random_llama, PROMPTS, max_new_tokens=6, stop_ids=[3], temperature=0, on_logits=_recorder(rec, len(PROMPTS))
    )
    assert not fastgen._POOL._free() or fastgen._POOL._free()[0].data_ptr() in {t.data_ptr() for t in free}
    for prompt, d, logits in zip(PROMPTS, out, rec):
        ref = _full_forward_logits(random_llama, prompt, d.tokens)
        assert torch.allclose(torch.stack(logits), ref, atol=1e-4), (torch.stack(logits) - ref).abs().max()


def test_kv_pool_hands_inference_buffers_only_to_inference_mode():
    """Generation runs under inference_mode, PRM scoring under no_grad: a buffer made by one must not be
    written by the other (torch refuses in-place updates of inference tensors outside inference mode)."""
    pool = fastgen._BufferPool()
    with torch.inference_mode():
        made = pool.take(64, torch.float32, torch.device("cpu"))
    pool.give(made)
    with torch.no_grad():
        got = pool.take(32, torch.float32, torch.device("cpu"))
        got[:8] = 1.0  # a fresh normal tensor, not the inference one
    assert got is not made
    with torch.inference_mode():
        assert pool.take(32, torch.float32, torch.device("cpu")) is made
