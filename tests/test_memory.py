"""Memory (issue 15 item 4): a collect keeps no finished trajectory, the pooled key/value buffers can be
handed back, the prefix store stays within its byte bound, and summaries read files one record at a time."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest
import torch

from agentprm import memory
from agentprm.policy import fastgen
from agentprm.rollout import RolloutConfig
from agentprm.rollout.jobs import pass_at_n, rollout_tasks, summarize_file
from agentprm.testing import ScriptedEnv, ScriptedPolicy
from agentprm.trajectory import read_trajectories

torch.set_num_threads(1)


def test_collect_holds_no_finished_trajectory(tmp_path):
    """Each trajectory is written and dropped: at any point only the live batch (and the one just
    yielded) may be alive, however many have been written. Keeping a list of them would fail here."""
    env = ScriptedEnv(max_rounds=3, n_train=40)
    policy = ScriptedPolicy(lambda conv, rng: rng.choice(["a", "b", "x"]))
    refs: list[weakref.ref] = []
    alive_seen: list[int] = []

    def on_done(traj, s) -> None:
        refs.append(weakref.ref(traj))
        gc.collect()
        alive_seen.append(sum(r() is not None for r in refs))

    s = rollout_tasks(
        policy,
        lambda: ScriptedEnv(max_rounds=3, n_train=40),
        env.task_ids("train"),
        tmp_path / "t.jsonl",
        n_per_task=2,
        cfg=RolloutConfig(temperature=1.0, batch_size=4),
        on_done=on_done,
    )
    assert s.written == 80 and len(read_trajectories(tmp_path / "t.jsonl")) == 80
    assert max(alive_seen) <= 4 + 1, alive_seen  # the batch, never the 80 written
    gc.collect()
    assert all(r() is None for r in refs)


def test_pooled_buffers_are_counted_and_released_in_every_thread():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    model = LlamaForCausalLM(cfg).eval()

    def decode():
        fastgen.decode_batch(model, [[1, 2, 3, 4], [5, 6]], max_new_tokens=3, stop_ids=[0], temperature=0)

    fastgen.release_buffers()
    assert fastgen.pooled_bytes() == 0
    decode()
    here = fastgen.pooled_bytes()
    # 2 layers x (keys, values) x 2 rows x 4 heads x (4 prompt + 3 new slots) x 8 dims x 4 bytes
    assert here == 2 * 2 * 2 * 4 * 7 * 8 * 4
    decoded, finish = threading.Event(), threading.Event()

    def in_thread():
        decode()
        decoded.set()
        finish.wait(30)

    t = threading.Thread(target=in_thread)
    t.start()
    decoded.wait(30)
    assert fastgen.pooled_bytes() == 2 * here  # the thread keeps its own
    memory.release_memory()
    assert fastgen.pooled_bytes() == 0  # released in both threads
    finish.set()
    t.join()
    decode()  # a released pool simply allocates again
    assert fastgen.pooled_bytes() == here


def test_a_buffer_that_fits_nothing_frees_the_smaller_pooled_ones_first():
    pool = fastgen._BufferPool()
    small = [pool.take(n, torch.float32, torch.device("cpu")) for n in (100, 200)]
    for t in small:
        pool.give(t)
    assert pool.nbytes == 300 * 4
    assert pool.take(150, torch.float32, torch.device("cpu")) is small[1]  # the smallest that fits is reused
    pool.give(small[1])
    big = pool.take(1000, torch.float32, torch.device("cpu"))
    assert pool.nbytes == 0 and big.numel() == 1000  # not resident beside the new one
    pool.give(big)
    assert pool.nbytes == 1000 * 4


def test_prefix_store_stays_within_its_byte_bound_and_says_it():
    store = fastgen.PrefixStore(max_bytes=3 << 20)
    assert "bounded at 3 MiB" in store.describe()
    n = 8192  # tokens: 4 tensors [1 head, n, 8 dims] fp32 = 1 MiB an entry

    def entry(i):
        ids = [i, *range(100, 100 + n - 1)]
        kv = [torch.zeros(1, n, 8) for _ in range(2)]
        return fastgen.PrefixKV(ids, kv, [k.clone() for k in kv], prompt_len=n - 1)

    for i in range(10):
        store.add(entry(i))
        assert store.bytes <= store.max_bytes
    assert len(store) == 3 and store.bytes == 3 << 20
    assert store.lookup([9, *range(100, 100 + n + 5)]) is not None  # the newest stays findable
    assert store.lookup([0, *range(100, 100 + n + 5)]) is None  # the oldest went


def test_file_summary_reads_one_record_at_a_time_and_matches_the_loaded_trajectories(tmp_path):
    env = ScriptedEnv(max_rounds=3, n_train=6)
    out = tmp_path / "t.jsonl"
    rollout_tasks(
        ScriptedPolicy(lambda conv, rng: rng.choice(["a", "b", "c"])),
        lambda: ScriptedEnv(max_rounds=3, n_train=6),
        env.task_ids("train"),
        out,
        n_per_task=4,
        cfg=RolloutConfig(temperature=1.0, batch_size=5),
        seed=3,
    )
    with out.open("a") as fh:
        fh.write('{"id": "torn')  # a torn last record is not counted
    trajs = read_trajectories(out)
    f = summarize_file(out)
    assert f.trajectories == len(trajs) == 24
    assert 0 < f.successes < 24  # the random choices solve some tasks, not all
    assert f.successes == sum(t.success for t in trajs)
    assert f.mean_reward == pytest.approx(sum(t.reward for t in trajs) / 24)
    assert f.pass_at_n == pass_at_n(trajs)
    assert summarize_file(tmp_path / "missing.jsonl").trajectories == 0


def test_peak_sampler_sees_a_block_freed_before_the_end():
    if not memory.rss_mib() > 0:
        pytest.skip("no /proc/self/status here")
    hwm = memory.peak_rss_mib()
    with memory.PeakSampler(interval=0.005) as s:
        start = memory.rss_mib()
        block = bytearray(128 << 20)  # zero-filled: every page touched
        time.sleep(0.05)
        del block
    assert s.peak_mib >= start + 100 and memory.rss_mib() < s.peak_mib - 100
    assert memory.peak_rss_mib() >= max(hwm, s.peak_mib - 1)  # the process peak is left alone


def test_malloc_trim_gives_back_the_free_heap_a_pinned_top_keeps():
    """The pattern behind the pipeline's carried-over RSS: blocks under glibc's mmap threshold, freed
    below a block still in use, stay resident until `malloc_trim`."""
    import ctypes

    libc = memory._LIBC
    if getattr(libc, "malloc_trim", None) is None or not memory.rss_mib() > 0:
        pytest.skip("needs glibc and /proc")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(100_000) for _ in range(2001)]  # 200 MB under the 128 KB mmap threshold
    for b in blocks:
        ctypes.memset(b, 1, 100_000)
    pin = blocks.pop()  # the last, above the others: the heap top cannot shrink past it
    before = memory.rss_mib()
    for b in blocks:
        libc.free(b)
    kept = memory.rss_mib()
    assert memory.heap_free_mib() >= 150
    assert memory.malloc_trim()
    after = memory.rss_mib()
    libc.free(pin)
    assert kept > before - 50  # freeing alone gave (almost) nothing back
    assert after < kept - 150, (before, kept, after)
