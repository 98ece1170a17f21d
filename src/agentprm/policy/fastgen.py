"""Fast batched decoding over an HF causal LM: a preallocated KV cache with per-row positions.

Why not `model.generate`: HF's `DynamicCache` grows by concatenation, so every token step copies the
whole cache (`shared/stack.md` measured 1.5 episodes/s at batch 100 against ~17 with a preallocated
cache), and finished rows keep computing until the whole batch is done. Here:

- every layer's keys/values live in one preallocated `[B, H_kv, L, D]` buffer, written in place;
- prompts are left-padded into shared slots, and each row's position ids start at 0 at its first
  real token (per-row positions), so a row computes what it would compute alone;
- the 4-D attention mask is built here (HF uses a 4-D mask as is) and hides every pad slot;
- rows that finished (end-of-turn token or the new-token cap) are dropped from the batch (in groups:
  compaction copies the cache);
- a row may start from a stored prefix (`PrefixKV`: the keys/values of an earlier prompt + turn of
  the same conversation): only the tokens after it are encoded. An agent's conversation grows by one
  short observation per round, so without this every round re-encodes the whole history, which was
  80% of a 10-round batch's time (prefill 2.4 s of 2.9 s at 800 prompt tokens, batch 64, tiny model).

The model's own forward runs unchanged (the cache object only answers `update`), so any architecture
whose attention calls `cache.update(k, v, layer_idx)` works: Llama, Qwen2, Mistral, SmolLM2, ...
`tests/test_policy.py` checks every step's logits against a plain full forward and the greedy tokens
against a naive loop and HF's own `generate`.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import torch

# Attention scores one prefill chunk may materialise (rows x heads x query slots x key slots): 2^26
# floats are 256 MB. A window within it (every round's new observation) stays one forward.
PREFILL_SCORES = 1 << 26
PREFILL_MIN_CHUNK = 16  # query slots: smaller chunks cost more forward calls than they save


# The pool's default byte bound, over all threads: one BabyAI buffer of 64 rows x 2.6k slots of the
# tiny default (4 KiB a token) is 0.65 GB, and the 10k-trajectory collect's pool grew from 944 to
# 1159 MiB as rare longer batches replaced its two buffers (docs/search.md, Memory).
POOL_MAX_BYTES = 1 << 30


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class _BufferPool:
    """Reusable KV storage, per thread: decoding allocates a buffer of hundreds of MB per call, and a fresh
    one costs its zeroing (or the kernel's page faults). In a reused buffer every slot a query attends to
    is written before it is read, and the masked pad slots are zeroed by `RowKVCache.allocate`. At most
    `keep` buffers per thread (the largest), and at most `max_bytes` over all threads together: a buffer
    handed back past the bound is freed (buffers that large are mmapped by glibc, so freeing one returns
    its pages to the kernel). Buffers in use are the decoder's, not the pool's."""

    def __init__(self, keep: int = 2, max_bytes: int = POOL_MAX_BYTES):
        self.keep = keep
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._lists: weakref.WeakSet[_FreeList] = weakref.WeakSet()  # every thread's list (for `clear`)
        self._lock = threading.Lock()  # the bound spans threads: `give` reads the others' lists

    def _free(self) -> list[torch.Tensor]:
        if not hasattr(self._local, "free"):
            self._local.free = _FreeList()
            self._lists.add(self._local.free)
        return self._local.free.items

    @property
    def nbytes(self) -> int:
        """Bytes the pool holds now, over all threads (at most `max_bytes`)."""
        with self._lock:
            return sum(_nbytes(t) for free in list(self._lists) for t in free.items)

    def describe(self) -> str:
        """The bound, for the line a collect prints at its start (as `PrefixStore.describe`)."""
        return (
            f"KV buffer pool bounded at {self.max_bytes / 2**20:.0f} MiB over all threads, at most {self.keep} "
            f"buffers a thread (fastgen.set_pool_bound)"
        )

    def set_max_bytes(self, max_bytes: int) -> None:
        """A new bound; buffers past it are freed now (the largest that fit stay)."""
        if max_bytes < 0:
            raise ValueError(f"pool bound must be >= 0 bytes, got {max_bytes}")
        with self._lock:
            self.max_bytes = max_bytes
            budget = max_bytes
            for free in list(self._lists):
                budget -= self._trim(free.items, budget)

    def _trim(self, free: list[torch.Tensor], budget: int) -> int:
        """Keep the largest of `free` that fit `keep` buffers and `budget` bytes; returns the bytes kept."""
        free.sort(key=_nbytes, reverse=True)
        kept: list[torch.Tensor] = []
        used = 0
        for t in free:
            if len(kept) < self.keep and used + _nbytes(t) <= budget:
                kept.append(t)
                used += _nbytes(t)
        free[:] = kept
        return used

    def clear(self) -> None:
        """Drop every thread's buffers (between stages: the largest buffers of a finished stage stay
        resident otherwise; a 128-episode BabyAI collect left 897 MiB in the pool)."""
        with self._lock:
            for free in list(self._lists):
                free.items.clear()

    def take(self, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        # An inference-mode tensor cannot be written outside inference mode (the PRM scores under no_grad)
        inference = torch.is_inference_mode_enabled()
        with self._lock:
            free = self._free()
            fits = [
                t
                for t in free
                if t.numel() >= numel and t.dtype == dtype and t.device == device and t.is_inference() == inference
            ]
            if fits:
                best = min(fits, key=lambda t: t.numel())
                del free[next(i for i, t in enumerate(free) if t is best)]  # by identity: == is elementwise
                return best
            # None fits: free the ones too small before allocating, or they stay resident beside the new one
            # (up to three at once, each up to 0.65 GB on BabyAI).
            free[:] = [t for t in free if t.dtype != dtype or t.device != device or t.is_inference() != inference]
        # `empty`, not `zeros`: a fresh buffer needs no more than a reused one (see above), and zeroing
        # would touch every page.
        return torch.empty(numel, dtype=dtype, device=device)

    def give(self, flat: torch.Tensor) -> None:
        with self._lock:
            free = self._free()
            others = sum(_nbytes(t) for lst in list(self._lists) if lst.items is not free for t in lst.items)
            free.append(flat)
            self._trim(free, self.max_bytes - others)  # the largest that fit stay


class _FreeList:
    """One thread's pooled buffers, weakly referenced by the pool (they go when the thread does).
    Hashed by identity: two threads' (equal) empty lists are different entries."""

    __slots__ = ("items", "__weakref__")

    def __init__(self) -> None:
        self.items: list[torch.Tensor] = []


_POOL = _BufferPool()


def release_buffers() -> None:
    """Free the pooled key/value buffers of every thread (`agentprm.memory.release_memory` calls this)."""
    _POOL.clear()


def pooled_bytes() -> int:
    """Bytes of key/value buffers the pool keeps for reuse."""
    return _POOL.nbytes


def pool_bound() -> int:
    """The pool's byte bound over all threads (default `POOL_MAX_BYTES`)."""
    return _POOL.max_bytes


def set_pool_bound(max_bytes: int) -> None:
    """Bound the pooled key/value buffers of every thread together to `max_bytes` (0: pool nothing, every
    decode allocates afresh); buffers past a lowered bound are freed now."""
    _POOL.set_max_bytes(max_bytes)


def describe_pool() -> str:
    """The pool's bound in words, for a collect's opening lines."""
    return _POOL.describe()


class RowKVCache:
    """Every layer's `[B, H_kv, L, D]` key/value buffer, preallocated once per batch, written in place.

    All layers live in one tensor `buf[2, layers, B, H_kv, L, D]` (keys, values), so a stored prefix
    or a compaction is one copy per row instead of one per layer. Before each forward set `start` (the
    slot of the first query token; the same for every row, as prompts are left-padded). Duck-types
    the one method HF attention calls, `update`.
    """

    is_compileable = False

    def __init__(self, n_layers: int, capacity: int):
        self.n_layers = n_layers
        self.capacity = capacity
        self.buf: torch.Tensor | None = None
        self.start = 0
        self.batch: int | None = None  # rows to allocate (the whole batch, even if a subset writes first)
        self.rows: torch.Tensor | None = None  # when set, `update` reads and writes only these rows
        self._flat: torch.Tensor | None = None  # the pooled storage behind `buf`
        self.pads: list[int] | None = None  # left padding of each row (zeroed in a reused buffer)

    def allocate(self, b: int, heads: int, dim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        shape = (2, self.n_layers, b, heads, self.capacity, dim)
        self._flat = _POOL.take(math.prod(shape), dtype, device)
        self.buf = self._flat[: math.prod(shape)].view(shape)
        # Pad slots are masked, but 0 x NaN is NaN: a reused buffer's stale values there are zeroed (a
        # garbage model's NaN must not leak into the next batch).
        for i, p in enumerate(self.pads or ()):
            if p:
                self.buf[:, :, i, :, :p] = 0
        return self.buf

    def release(self) -> None:
        """Hand the buffer back for the next batch (call when nothing reads this cache any more): a fresh
        [2, layers, B, H, L, D] buffer per generate call was ~15% of a BabyAI best-of-16 (zeroing ~400 MB)."""
        if self._flat is not None:
            _POOL.give(self._flat)
        self._flat, self.buf = None, None

    @property
    def keys(self) -> list[torch.Tensor]:
        return list(self.buf[0]) if self.buf is not None else []

    @property
    def values(self) -> list[torch.Tensor]:
        return list(self.buf[1]) if self.buf is not None else []

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        buf = self.buf
        if buf is None:  # lazily, so dtype/device/heads come from the model itself
            _, h, _, d = key_states.shape
            b = self.batch if self.batch is not None else key_states.shape[0]
            buf = self.allocate(b, h, d, key_states.dtype, key_states.device)
        end = self.start + key_states.shape[2]
        k_buf, v_buf = buf[0, layer_idx], buf[1, layer_idx]
        if self.rows is not None:  # a subset of the batch's rows (chunked prefill)
            k_buf[self.rows, :, self.start : end] = key_states
            v_buf[self.rows, :, self.start : end] = value_states
            return k_buf[self.rows, :, :end], v_buf[self.rows, :, :end]
        k_buf[:, :, self.start : end] = key_states
        v_buf[:, :, self.start : end] = value_states
        return k_buf[:, :, :end], v_buf[:, :, :end]

    def keep_rows(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (slots written so far only): dropping finished rows moves the kept
        ones down in place; repeating rows (n samples of one prefilled prompt) copies into a new buffer."""
        if self.buf is None:
            return
        buf, keep = self.buf, index.tolist()
        if len(keep) <= buf.shape[2] and all(a < b for a, b in zip(keep, keep[1:])):
            for j, r in enumerate(keep):
                if j != r:  # j < r: row j's old content was dropped or already moved
                    buf[:, :, j, :, : self.start] = buf[:, :, r, :, : self.start]
            self.buf = buf[:, :, : len(keep)]
            return
        shape = (*buf.shape[:2], len(keep), *buf.shape[3:])
        flat = _POOL.take(math.prod(shape), buf.dtype, buf.device)
        new = flat[: math.prod(shape)].view(shape)
        new[:, :, :, :, : self.start] = buf[:, :, index, :, : self.start]  # pad slots come along zeroed
        old, self.buf, self._flat = self._flat, new, flat
        if old is not None:
            _POOL.give(old)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.start


class StoredPrefix(Protocol):
    """What `DecodeState` reads from a stored prefix: `PrefixKV` here, the PRM's `ScoreState`."""

    def all_ids(self) -> list[int]: ...

    def shape(self) -> tuple[int, int, torch.dtype]: ...

    def copy_into(self, buf: torch.Tensor, row: int, at: int, n: int) -> None: ...


@dataclass
class PrefixKV:
    """Keys/values of the token sequence `ids`, per layer `[H_kv, len(ids), D]`: a reusable prefix."""

    ids: list[int]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    prompt_len: int = 0  # how many of `ids` were the prompt (the rest were generated)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    @property
    def length(self) -> int:
        return len(self.ids)

    def all_ids(self) -> list[int]:
        return self.ids

    def shape(self) -> tuple[int, int, torch.dtype]:
        """(heads, head dim, dtype) of the stored keys."""
        return self.keys[0].shape[0], self.keys[0].shape[-1], self.keys[0].dtype

    def copy_into(self, buf: torch.Tensor, row: int, at: int, n: int) -> None:
        """Write the first `n` tokens' keys/values into cache row `row` from slot `at`."""
        for layer, (k, v) in enumerate(zip(self.keys, self.values)):
            buf[0, layer, row, :, at : at + n] = k[:, :n]
            buf[1, layer, row, :, at : at + n] = v[:, :n]


@dataclass
class Decoded:
    tokens: list[int]  # generated ids, end-of-turn token included when it was produced
    finished: bool  # True when an end-of-turn token ended it, False when the cap cut it
    kv: PrefixKV | None = None  # prompt + tokens[:-1] (what the model has seen), when keep_kv


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if list(a[:n]) == list(b[:n]):
        return n
    lo, hi = 0, n  # binary search on slice equality: C-speed compares instead of a Python loop
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if list(a[:mid]) == list(b[:mid]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _mask(allowed: torch.Tensor, dtype: torch.dtype, boolean: bool) -> torch.Tensor:
    """`allowed` [B, q, k] bool -> the 4-D mask HF attention consumes as is."""
    allowed = allowed.unsqueeze(1)
    if boolean:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


_MASK64 = (1 << 64) - 1


def uniform(seed: int, counter: int) -> float:
    """A uniform in [0, 1) that is a pure function of (seed, counter): splitmix64 of the pair.

    The sampler's randomness is counter-based: row r's draw at decode step t is `uniform(seed_r, t)`,
    so a row's samples depend on its own seed only, never on the batch (no per-row generator object)."""
    z = (seed * 0x9E3779B97F4A7C15 + (counter + 1) * 0xD1B54A32D192ED03) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return ((z ^ (z >> 31)) >> 11) * 2.0**-53


def _sample(logits: torch.Tensor, temperature: float, seeds: Sequence[int | None] | None, step: int) -> torch.Tensor:
    """Next tokens `[B]`: argmax at temperature 0, else inverse-CDF sampling over the whole batch.

    Seeded rows draw `uniform(seed, step)`; unseeded rows draw from torch's global generator. One
    softmax, one cumulative sum and one `searchsorted` for the batch: per-row `torch.multinomial` calls
    with their own generators cost 0.16 ms a row at batch 32 (docs/search.md)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    b = probs.shape[0]
    if seeds is None or all(s is None for s in seeds):
        u = torch.rand(b, dtype=torch.float64)
    else:
        free = iter(torch.rand(sum(s is None for s in seeds), dtype=torch.float64).tolist())
        u = torch.tensor([uniform(s, step) if s is not None else next(free) for s in seeds], dtype=torch.float64)
    # float64 sums: float32 rounding over a 50k vocabulary could pick a token past the last one
    cdf = probs.cumsum(-1, dtype=torch.float64)
    x = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(1)
    # right=True: the first token whose cumulative mass exceeds x, so a zero-probability token is never picked
    return torch.searchsorted(cdf, x, right=True).squeeze(1).clamp_(max=probs.shape[1] - 1)


class DecodeState:
    """One batch of sequences in a shared cache: `prefill` encodes the prompts, `step` appends a token.

    Prompts are left-padded into shared slots, so every prompt ends at slot `p_max`; each row's
    position ids start at 0 at its first real token (per-row positions), so a row computes exactly
    what it would compute alone (the pad slots are masked out). `prefixes[i]`, when given, holds
    keys/values of a sequence sharing a prefix with prompt i (anything with `all_ids()`, `shape()` and
    `copy_into`: `PrefixKV`, or the PRM's chained `ScoreState`): the shared part (at most all but the
    prompt's last token) is copied into the cache, not recomputed, and the encoded window starts at
    the earliest slot any row still needs. `extra` slots are reserved after the prompts for `step`.

    The model is any HF module whose attention calls `cache.update` (a causal LM, or its base model
    for a value head). `live` maps batch rows to original prompt indices (rows leave by `keep_rows`).
    """

    def __init__(
        self,
        model,
        prompts: Sequence[Sequence[int]],
        *,
        extra: int = 0,
        pad_id: int = 0,
        prefixes: Sequence[StoredPrefix | None] | None = None,
    ):
        self.model = model
        self.pad_id = pad_id
        self.device = device = next(model.parameters()).device
        self.prompts = prompts
        n = len(prompts)
        self.lengths = torch.tensor([len(p) for p in prompts], device=device)
        if n == 0 or int(self.lengths.min()) < 1:
            raise ValueError("empty prompt")
        self.p_max = p_max = int(self.lengths.max())
        self.pad = p_max - self.lengths  # left padding of each row
        self.pad_list = self.pad.tolist()
        self.boolean = getattr(model.config, "_attn_implementation", "sdpa") in ("sdpa", "flash_attention_2")
        self.dtype = next(model.parameters()).dtype
        self.cache = RowKVCache(model.config.num_hidden_layers, p_max + extra)
        self.cache.pads = self.pad_list
        # Reused prefix length per row: the common prefix with its stored sequence, leaving at least
        # one prompt token to encode (its output starts the turn / scores the last token).
        self.reuse = [0] * n
        reused: list[tuple[int, StoredPrefix]] = []  # (row, its stored prefix) where some of it is reused
        for i, (p, pre) in enumerate(zip(prompts, prefixes or ())):
            if pre is not None:
                self.reuse[i] = min(common_prefix(pre.all_ids(), p), len(p) - 1)
                if self.reuse[i]:
                    reused.append((i, pre))
        self.first_slot = [self.pad_list[i] + self.reuse[i] for i in range(n)]  # each row's first slot to encode
        self.s0 = min(self.first_slot)  # first encoded slot
        if reused:
            heads, dim, dtype = reused[0][1].shape()
            buf = self.cache.allocate(n, heads, dim, dtype, device)
            for i, pre in reused:
                pre.copy_into(buf, i, self.pad_list[i], self.reuse[i])
        slots = torch.arange(p_max, device=device)
        self.real = slots.view(1, -1) >= self.pad.view(-1, 1)  # [B, slots]: not padding
        self.live = list(range(n))  # original row index of each batch row
        self.cur_pos = self.lengths.clone()  # position id of each row's next token

    def prefill(self, **kwargs):
        """Encode the window [s0, p_max) of every prompt; returns the model's output for the window.

        The window is encoded in query chunks whose attention scores stay under `PREFILL_SCORES`
        elements, each chunk over only the rows that still need a slot in it: one row without a stored
        prefix (a new or evicted conversation) no longer makes every row of the batch re-encode its
        whole history, nor materialises [B, H, L, L] scores (a BabyAI best-of-8 was OOM-killed at 24 GB
        that way). With `logits_to_keep=1` the last chunk (every row) gives the output; otherwise the
        hidden states of the window are assembled (slots a row did not encode are zeros: they precede
        its first needed slot, and nobody reads them).
        """
        n, p_max, s0, dev = len(self.prompts), self.p_max, self.s0, self.device
        ids = torch.full((n, p_max - s0), self.pad_id, dtype=torch.long)
        for i, p in enumerate(self.prompts):
            w = min(len(p), p_max - s0)
            ids[i, p_max - s0 - w :] = torch.as_tensor(p[len(p) - w :], dtype=torch.long)
        slots = torch.arange(p_max, device=dev)
        pos = (slots.view(1, -1) - self.pad.view(-1, 1)).clamp(min=0)
        heads = getattr(self.model.config, "num_attention_heads", 1)
        chunk = max(PREFILL_MIN_CHUNK, PREFILL_SCORES // max(1, n * heads * p_max))
        bounds = list(range(s0, p_max, chunk)) + [p_max]
        self.cache.batch = n
        outs: list[tuple[list[int], int, Any]] = []
        for c0, c1 in zip(bounds, bounds[1:]):
            rows = [i for i in range(n) if self.first_slot[i] < c1] if len(bounds) > 2 else list(range(n))
            q_slots = slots[c0:c1]
            k_slots = slots[:c1]
            causal = k_slots.view(1, -1) <= q_slots.view(-1, 1)  # [q, k]
            # A pad query sees no key at all; let it see itself so softmax stays finite (its output is unused).
            itself = k_slots.view(1, -1) == q_slots.view(-1, 1)
            idx = torch.tensor(rows, device=dev)
            real = self.real[idx, :c1]
            allowed = (causal.unsqueeze(0) & real.unsqueeze(1)) | itself.unsqueeze(0)
            self.cache.start = c0
            self.cache.rows = None if len(rows) == n else idx
            out = self.model(
                input_ids=ids[rows, c0 - s0 : c1 - s0].to(dev),
                attention_mask=_mask(allowed, self.dtype, self.boolean),
                position_ids=pos[idx, c0:c1],
                cache=self.cache,
                use_cache=True,
                **kwargs,
            )
            outs.append((rows, c0, out))
        self.cache.rows = None
        self.cache.start = p_max
        if len(outs) == 1 or kwargs.get("logits_to_keep") == 1:
            return outs[-1][2]  # the last chunk holds every row
        hidden = outs[-1][2].last_hidden_state
        full = hidden.new_zeros((n, p_max - s0, hidden.shape[-1]))
        for rows, c0, out in outs:
            h = out.last_hidden_state
            full[torch.tensor(rows), c0 - s0 : c0 - s0 + h.shape[1]] = h
        return SimpleNamespace(last_hidden_state=full)

    def step(self, tokens: torch.Tensor):
        """Append one token to every live row; returns the model's output for it."""
        b = len(self.live)
        self.real = torch.cat([self.real, self.real.new_ones((b, 1))], dim=1)  # the new token's slot
        out = self.model(
            input_ids=tokens.view(b, 1),
            attention_mask=_mask(self.real.unsqueeze(1), self.dtype, self.boolean),
            position_ids=self.cur_pos.view(b, 1),
            cache=self.cache,
            use_cache=True,
        )
        self.cache.start += 1
        self.cur_pos = self.cur_pos + 1
        return out

    def keep_rows(self, keep: list[int]) -> torch.Tensor:
        """Keep only batch rows `keep` (compaction copies the cache); returns them as an index tensor."""
        index = torch.tensor(keep, device=self.device)
        self.cache.keep_rows(index)
        self.live = [self.live[j] for j in keep]
        self.cur_pos, self.real = self.cur_pos[index], self.real[index]
        return index

    def repeat_rows(self, src: Sequence[int], prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """After `prefill` over distinct prompts: row r of the new batch is a copy of row `src[r]`
        (`prompts[r]` equals its prompt). Returns `src` as an index tensor (to repeat the logits)."""
        index = torch.tensor(src, device=self.device)
        self.cache.keep_rows(index)
        self.prompts = prompts
        self.lengths, self.pad = self.lengths[index], self.pad[index]
        self.pad_list = [self.pad_list[j] for j in src]
        self.reuse = [self.reuse[j] for j in src]
        self.first_slot = [self.first_slot[j] for j in src]
        self.real, self.cur_pos = self.real[index], self.cur_pos[index]
        self.live = list(range(len(src)))
        return index

    def slot(self, row: int, token: int) -> int:
        """Cache slot of token `token` (0-based, of the prompt and what followed) of original row `row`."""
        return self.pad_list[row] + token

    def kv(self, j: int, seen: list[int], prompt_len: int) -> PrefixKV:
        """Batch row j's keys/values so far (`seen`: its tokens), copied out of the cache."""
        a, b = self.pad_list[self.live[j]], self.cache.start
        packed = self.cache.buf[:, :, j, :, a:b].clone()  # type: ignore[index]
        return PrefixKV(seen, list(packed[0]), list(packed[1]), prompt_len=prompt_len)


@torch.inference_mode()
def decode_batch(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    stop_ids: Sequence[int],
    temperature: float = 0.0,
    seeds: Sequence[int | None] | None = None,
    pad_id: int = 0,
    on_logits: Callable[[list[int], torch.Tensor], None] | None = None,
    prefixes: Sequence[PrefixKV | None] | None = None,
    keep_kv: bool = False,
) -> list[Decoded]:
    """Generate a continuation for every prompt (token ids) in one batch; returns them in order.

    `on_logits(rows, logits)`, when given, sees the next-token logits `[len(rows), V]` of the rows
    still generating (original prompt indices `rows`) before each sampling step (tests compare them
    with a plain forward). `prefixes` as in `DecodeState`. `keep_kv` returns each row's keys/values
    (prompt + generated but the last token) on `Decoded.kv`. `seeds[i]`: row i's sampling seed (its
    t-th token draws `uniform(seeds[i], t)`; None: torch's global generator).

    Identical prompts (the n samples of one conversation) are encoded once: the prefill runs over the
    distinct prompts and the cache rows are then repeated, so sampling n actions costs one prompt's
    prefill, not n.
    """
    n = len(prompts)
    if n == 0:
        return []
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    row_seeds = list(seeds) if seeds is not None else [None] * n
    distinct: dict[tuple[int, ...], int] = {}
    src = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]  # row -> its distinct prompt
    firsts: list[int] = []  # the first row of each distinct prompt (numbered in order of appearance)
    for r, d in enumerate(src):
        if d == len(firsts):
            firsts.append(r)
    if len(firsts) < n:
        pre = [prefixes[r] for r in firsts] if prefixes is not None else None
        state = DecodeState(model, [prompts[r] for r in firsts], extra=max_new_tokens, pad_id=pad_id, prefixes=pre)
    else:
        state = DecodeState(model, prompts, extra=max_new_tokens, pad_id=pad_id, prefixes=prefixes)
    try:
        last = state.prefill(logits_to_keep=1).logits[:, -1]
        if len(firsts) < n:
            last = last[state.repeat_rows(src, prompts)]
        stop = torch.tensor(sorted(set(stop_ids)), device=state.device)
        results: list[Decoded | None] = [None] * n
        tokens: list[list[int]] = [[] for _ in range(n)]

        def done(j: int, r: int, finished: bool) -> None:
            kv = (
                state.kv(j, list(prompts[r]) + tokens[r][: state.cache.start - state.p_max], len(prompts[r]))
                if keep_kv
                else None
            )
            results[r] = Decoded(tokens[r], finished, kv)

        active = [True] * n  # per batch row: still generating (finished rows may linger until compaction)
        for step in range(max_new_tokens):
            if on_logits is not None:
                rows = [j for j, a in enumerate(active) if a]
                on_logits([state.live[j] for j in rows], last[rows])
            nxt = _sample(last, temperature, [row_seeds[r] for r in state.live], step)
            nxt_list, stop_list = nxt.tolist(), torch.isin(nxt, stop).tolist()
            for j, r in enumerate(state.live):
                if active[j]:
                    tokens[r].append(nxt_list[j])
                    if stop_list[j]:
                        done(j, r, True)
                        active[j] = False
            if step == max_new_tokens - 1 or not any(active):
                for j, r in enumerate(state.live):
                    if active[j]:
                        done(j, r, False)
                break
            # Drop finished rows once they are a quarter of the batch: compaction copies the cache, so
            # doing it for every single finished row costs more than computing a few idle rows.
            idle = active.count(False)
            if idle and idle * 4 >= len(active):
                nxt = nxt[state.keep_rows([j for j, a in enumerate(active) if a])]
                active = [True] * len(state.live)
            last = state.step(nxt).logits[:, -1]
        return results  # type: ignore[return-value]
    finally:
        state.cache.release()  # the buffer goes back to the pool; results hold copies


class PrefixStore:
    """Keys/values of recent prompts + turns, found again by the longest stored prefix of a new prompt.

    A rollout round's prompt is the previous round's prompt + the generated turn + one observation, so
    the previous round's entry is a prefix of it (up to the turn, whose re-tokenised text may differ:
    the match then stops at the common prefix). Entries are indexed by a rolling hash of their prompt
    part and of their whole sequence; least recently used entries go first past `max_bytes`. Valid only
    while the model's weights stay the same: call `clear()` after changing them.
    """

    _MOD = (1 << 61) - 1
    _BASE = 1_000_003

    def __init__(self, max_bytes: int = 1 << 30):
        from collections import OrderedDict

        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[int, PrefixKV] = OrderedDict()
        self._index: dict[tuple[int, int], int] = {}
        self._eid: dict[int, int] = {}  # id(entry) -> its key in _entries
        self._lengths: dict[int, int] = {}  # indexed length -> how many index keys have it
        self._next = 0
        self.hits = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"PrefixStore({len(self)} entries, {self.bytes / 2**20:.1f} of at most {self.max_bytes / 2**20:.0f} MB)"

    def describe(self) -> str:
        """The bound, for the line a collect prints at its start."""
        return (
            f"KV prefix store bounded at {self.max_bytes / 2**20:.0f} MiB (least recently used entries go first; "
            f"HFPolicy kv_store_bytes=)"
        )

    def clear(self) -> None:
        self._entries.clear()
        self._index.clear()
        self._eid.clear()
        self._lengths.clear()
        self.bytes = 0

    @classmethod
    def _hashes(cls, ids: Sequence[int], upto: int) -> list[int]:
        h, out = 0, [0]
        for t in ids[:upto]:
            h = (h * cls._BASE + t + 1) % cls._MOD
            out.append(h)
        return out

    def _keys(self, entry: PrefixKV) -> list[tuple[int, int]]:
        hs = self._hashes(entry.ids, len(entry.ids))
        return [(n, hs[n]) for n in {entry.prompt_len, len(entry.ids)} if n > 0]

    def add(self, entry: PrefixKV) -> None:
        if entry.nbytes > self.max_bytes:
            return
        eid, self._next = self._next, self._next + 1
        self._entries[eid] = entry
        self._eid[id(entry)] = eid
        self.bytes += entry.nbytes
        for key in self._keys(entry):
            if key not in self._index:
                self._lengths[key[0]] = self._lengths.get(key[0], 0) + 1
            self._index[key] = eid  # the newest entry wins a shared key
        while self.bytes > self.max_bytes:
            self._evict(next(iter(self._entries)))

    def _evict(self, eid: int) -> None:
        entry = self._entries.pop(eid)
        self._eid.pop(id(entry), None)
        self.bytes -= entry.nbytes
        for key in self._keys(entry):
            if self._index.get(key) == eid:
                del self._index[key]
                self._lengths[key[0]] -= 1
                if not self._lengths[key[0]]:
                    del self._lengths[key[0]]

    def demote(self, entry: PrefixKV) -> None:
        """Make `entry` the first to be evicted: its conversation has a longer entry now (the turn just
        generated from it). LRU alone would keep every round's entry of a live conversation as long as
        the newest (the sum over rounds grows with the square of the length) and evict other live
        conversations first: with 64 BabyAI episodes of ~2k tokens the store thrashed."""
        eid = self._eid.get(id(entry))
        if eid is not None:
            self._entries.move_to_end(eid, last=False)

    def lookup(self, prompt: Sequence[int]) -> PrefixKV | None:
        """The stored entry sharing the longest indexed prefix with `prompt` (None if none)."""
        hs = self._hashes(prompt, len(prompt))
        for n in sorted((n for n in self._lengths if n <= len(prompt)), reverse=True):
            eid = self._index.get((n, hs[n]))
            if eid is None:
                continue
            entry = self._entries[eid]
            if list(entry.ids[:n]) != list(prompt[:n]):  # a hash collision
                continue
            self._entries.move_to_end(eid)
            self.hits += 1
            return entry
        return None
