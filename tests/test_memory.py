"""Memory (issue 15 item 4): a collect keeps no finished trajectory, the pooled key/value buffers can be
handed back, the prefix store stays within its byte bound, and summaries read files one record at a time."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
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


def test_pool_stays_within_its_byte_bound_under_growing_requests():
    """Decode-like rounds (one buffer, or two at once as n samples of a prompt take) of growing size: the
    pool never holds more than its bound, reuses the largest buffer that fits it, and frees one past it."""
    cpu = torch.device("cpu")
    pool = fastgen._BufferPool(keep=2, max_bytes=1000 * 4)  # 1000 floats
    kept: dict[int, torch.Tensor] = {}
    for n in (100, 250, 400, 600, 800, 999, 1200, 300, 1500, 700):
        a = pool.take(n, torch.float32, cpu)
        b = pool.take(n // 2, torch.float32, cpu)
        assert a.numel() >= n and b.numel() >= n // 2 and a.data_ptr() != b.data_ptr()
        pool.give(a)
        pool.give(b)
        assert pool.nbytes <= pool.max_bytes and len(pool._free()) <= 2, (n, pool.nbytes)
        kept[n] = a
    assert 1200 * 4 > pool.max_bytes and all(t is not kept[1200] for t in pool._free())  # freed, not kept
    # a request the pool can serve takes a kept buffer; the largest that fits the bound stays
    largest = max(pool._free(), key=lambda t: t.numel())
    assert largest.numel() * 4 <= pool.max_bytes
    assert pool.take(largest.numel(), torch.float32, cpu) is largest


def test_pool_bound_spans_threads_and_a_lowered_bound_frees_now():
    cpu = torch.device("cpu")
    pool = fastgen._BufferPool(keep=2, max_bytes=1000 * 4)
    pool.give(pool.take(600, torch.float32, cpu))

    def other():
        pool.give(pool.take(600, torch.float32, cpu))  # 600 + 600 floats > the bound: this one is freed

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert pool.nbytes == 600 * 4
    pool.give(pool.take(300, torch.float32, cpu))  # takes the 600 back, hands it back
    pool.give(torch.empty(300))
    assert pool.nbytes == 900 * 4
    pool.set_max_bytes(700 * 4)
    assert pool.nbytes == 600 * 4  # the largest that fits stays
    pool.set_max_bytes(0)
    assert pool.nbytes == 0
    assert "bounded at 0 MiB over all threads" in pool.describe()
    pool.set_max_bytes(3 << 20)
    assert "bounded at 3 MiB" in pool.describe()
    assert fastgen.pool_bound() == fastgen.POOL_MAX_BYTES  # the module's pool keeps its documented default


def test_kv_cache_under_a_small_pool_bound_gets_right_shaped_buffers_with_zeroed_pads(monkeypatch):
    """Through `RowKVCache` (what decoding uses): growing caches under a bound that holds one of them
    at most; every buffer has the cache's shape and zeros in the pad slots, though the pooled storage
    was left full of NaN by the previous batch."""
    bound = 2 * 3 * 4 * 2 * 40 * 8 * 4  # one [2, 3 layers, 4 rows, 2 heads, 40 slots, 8 dims] fp32 buffer
    monkeypatch.setattr(fastgen, "_POOL", fastgen._BufferPool(max_bytes=bound))
    cpu = torch.device("cpu")
    for capacity in (10, 20, 30, 40, 50, 35):
        cache = fastgen.RowKVCache(n_layers=3, capacity=capacity)
        cache.pads = [3, 0, 1, 5]
        buf = cache.allocate(4, 2, 8, torch.float32, cpu)
        assert buf.shape == (2, 3, 4, 2, capacity, 8)
        for row, pad in enumerate(cache.pads):
            assert torch.all(buf[:, :, row, :, :pad] == 0), (capacity, row)
        buf.fill_(float("nan"))  # what a broken model might leave behind
        cache.release()
        assert fastgen.pooled_bytes() <= bound
    # the 50-slot buffer was past the bound and freed; the 35-slot one (allocated afresh) stays
    assert fastgen.pooled_bytes() == 2 * 3 * 4 * 2 * 35 * 8 * 4


def test_decoding_under_a_pool_bound_gives_the_unbounded_tokens(monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    model = LlamaForCausalLM(cfg).eval()
    prompts = [[1, 2, 3, 4], [1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 11, 12]]  # a repeated one: two buffers at once

    def run():
        out = []
        for k in range(1, 4):  # growing prompts
            got = fastgen.decode_batch(
                model, [p * k for p in prompts], max_new_tokens=4, stop_ids=[0], temperature=1.0, seeds=[1, 2, 3, 4]
            )
            out.append([d.tokens for d in got])
        return out

    monkeypatch.setattr(fastgen, "_POOL", fastgen._BufferPool())
    free = run()
    # the buffers are 15-45 KB (the last call's pair 33792 + 45056 bytes): some kept, some freed
    monkeypatch.setattr(fastgen, "_POOL", fastgen._BufferPool(max_bytes=40_000))
    bounded = run()
    assert bounded == free
    assert 0 < fastgen.pooled_bytes() <= 40_000


def test_set_mmap_threshold_sends_blocks_over_it_to_mmap():
    """In a child process (the setting is process-wide and would outlive this test): after a freed 8 MiB
    block raised glibc's dynamic threshold, a 2 MiB block comes from the heap; once the threshold is fixed
    at 1 MiB, a 2 MiB block is mmapped (mallinfo2's hblkhd) and a 512 KiB one is not."""
    if getattr(memory._LIBC, "mallopt", None) is None or getattr(memory._LIBC, "mallinfo2", None) is None:
        pytest.skip("needs glibc 2.33+")
    code = textwrap.dedent(
        """
        import ctypes
        from agentprm import memory
        libc = memory._LIBC
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        libc.free(libc.malloc(8 << 20))  # an mmapped block freed: the dynamic threshold rises to 8 MiB
        m0 = memory.mmapped_mib()
        dyn = libc.malloc(2 << 20)
        m1 = memory.mmapped_mib()
        ok = memory.set_mmap_threshold(1 << 20)
        fixed = libc.malloc(2 << 20)
        m2 = memory.mmapped_mib()
        small = libc.malloc(512 << 10)
        m3 = memory.mmapped_mib()
        print(ok, m1 - m0, m2 - m1, m3 - m2)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    ok, dynamic, fixed, small = out.stdout.split()
    assert ok == "True"
    assert float(dynamic) == 0  # from the heap under the raised dynamic threshold
    assert float(fixed) >= 2  # mmapped under the fixed one
    assert float(small) == 0


def test_set_mmap_threshold_rejects_what_glibc_refuses_and_warns_without_glibc(monkeypatch, capsys):
    from agentprm.errors import UserError

    with pytest.raises(UserError, match="32 MiB"):
        memory.set_mmap_threshold(64 << 20)
    monkeypatch.setattr(memory, "_LIBC", None)
    assert memory.set_mmap_threshold(1 << 20) is False
    err = capsys.readouterr().err
    assert "no glibc mallopt" in err and err.count("\n") == 1


def test_collect_mmap_threshold_option_checks_its_range_and_ray(tmp_path):
    from tests.cli_helpers import run_main

    base = ["collect", "--policy", str(tmp_path / "nope"), "--env", "scripted", "--out", str(tmp_path / "t.jsonl")]
    code, err = run_main([*base, "--mmap-threshold-mib", "64"])
    assert code == 2 and "1 to 32 MiB" in err and len(err.strip().splitlines()) == 1
    code, err = run_main([*base, "--mmap-threshold-mib", "1", "--ray", "auto"])
    assert code == 2 and "Ray workers" in err
    from typer.testing import CliRunner

    from agentprm.cli import app

    assert "--mmap-threshold-mib" in CliRunner().invoke(app, ["collect", "--help"], terminal_width=200).output


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


def test_heap_trimmer_trims_every_nth_tick_only_past_its_bound(monkeypatch):
    free = {"mib": 100.0}
    trims: list[int] = []
    monkeypatch.setattr(memory, "heap_free_mib", lambda: free["mib"])
    monkeypatch.setattr(memory, "malloc_trim", lambda: trims.append(1) or True)
    t = memory.HeapTrimmer(max_free_mib=256, every=4)
    assert [t.tick() for _ in range(8)] == [False] * 8  # under the bound: read, never trimmed
    free["mib"] = 300.0
    assert [t.tick() for _ in range(8)] == [False, False, False, True] * 2  # only every 4th tick looks
    assert t.trims == len(trims) == 2
    free["mib"] = float("nan")  # no mallinfo2: never trims
    assert not any(t.tick() for _ in range(8))
    off = memory.HeapTrimmer(max_free_mib=0, every=1)
    free["mib"] = 1e6
    assert not any(off.tick() for _ in range(4)) and len(trims) == 2


def test_rollout_tasks_trims_the_heap_it_fragments(tmp_path, monkeypatch):
    """The collect loop ticks the trimmer once per finished trajectory; 0 turns it off."""
    ticks: list[int] = []
    monkeypatch.setattr(memory.HeapTrimmer, "tick", lambda self: ticks.append(self.max_free_mib) or False)
    env = lambda: ScriptedEnv(max_rounds=3, n_train=6)  # noqa: E731
    policy = ScriptedPolicy(lambda conv, rng: rng.choice(["a", "b", "c"]))
    ids = env().task_ids("train")
    rollout_tasks(policy, env, ids[:2], tmp_path / "t.jsonl", n_per_task=3, heap_trim_mib=64)
    assert ticks == [64] * 6
    rollout_tasks(policy, env, ids[2:3], tmp_path / "u.jsonl", n_per_task=2, heap_trim_mib=0)
    assert ticks[6:] == [0, 0]
