"""Supervised fine-tuning on expert demos: loss on assistant tokens only, checkpoints, resume.

The base is either `"tiny"` (the embedded default, built and tokenised from the demos themselves,
see `policy/tiny.py`) or any HF causal LM dir (full fine-tuning, or LoRA via peft, merged on save).
The output is an ordinary HF dir plus `agentprm_policy.json` (which env and data it learned from).

Which tokens are trained on comes from `conversation.tokenize_conversation`, the one alignment of
assistant turns shared with the PRM: every assistant turn's content and its end-of-turn token, except
AgentGym's "OK." acknowledgement of the system prompt (AgentGym's data marks that turn `loss: false`;
`train_on_ack=True` trains it too) and turns flagged `loss: False` (`conversation.LOSS`: the policy's own
turns in a DAgger correction record, `policy/dagger.py`, which trains only the expert's last turn).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentprm.conversation import ACK, CORRECTION, Message, tokenize_conversation, trains, trajectory_messages
from agentprm.disk import atomic_write_text, remove, writing
from agentprm.errors import UserError
from agentprm.policy.hf import META_FILE, check_policy_dir, quiet_transformers
from agentprm.policy.tiny import TinyPolicyConfig, build_tiny

IGNORE = -100  # label of tokens without loss (HF's convention)
CKPT_DIR = "checkpoint"


@dataclass
class SFTConfig:
    """Training settings. The tiny defaults take a few minutes on 2 CPU cores (see docs/policy.md)."""

    max_demos: int | None = None  # use the first N successful demos (None: all)
    epochs: float = 3.0
    max_steps: int | None = None  # caps the steps that `epochs` implies
    batch_size: int = 32
    # Rows per forward/backward inside a step (None: the whole batch): gradients accumulate over the micro
    # batches, so the update is the batch's (same loss normalisation) with a micro batch's activations.
    micro_batch_size: int | None = None
    lr: float = 2e-3  # tiny from scratch; pretrained bases want ~1e-5 (paper) or ~2e-4 with LoRA
    warmup_steps: int = 30
    weight_decay: float = 0.01
    max_length: int = 1024  # longer conversations are cut (their tail is lost)
    train_on_ack: bool = False
    lora_r: int = 0  # > 0: LoRA adapters instead of full fine-tuning (pretrained bases only)
    lora_alpha: int = 32
    lora_targets: str | list[str] = "all-linear"  # peft target_modules (all-linear: every projection, not the LM head)
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    checkpoint_every: int = 100  # steps
    checkpoint_minutes: float = 5.0  # also save when this long has passed since the last save (0: never)
    seed: int = 0
    threads: int | None = None  # torch threads (None: torch's default)
    device: str = "auto"  # auto: cuda when available (under accelerate launch: accelerate's device)
    # bf16 autocast (fp32 master weights): ~1.3x faster on CPUs with AVX-512 bf16; with LoRA the frozen
    # base weights are also held in bf16 (half the memory), and merged into fp32 on save
    bf16: bool = False
    tiny: TinyPolicyConfig = field(default_factory=TinyPolicyConfig)


# How a run trains, not what it learns (outside the pipeline's SFT stage key, like prm.config.HOW_FIELDS)
HOW_FIELDS = ("threads", "checkpoint_every", "micro_batch_size")

# The cosine schedule decays to this fraction of the peak lr: where a run that continues a trained policy
# (RFT) starts.
FINAL_LR_FRACTION = 0.1


def lr_schedule(step: int, total: int, cfg: SFTConfig) -> float:
    """The lr of optimiser step `step` of `total`: linear warm-up, then cosine decay to FINAL_LR_FRACTION."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    low = FINAL_LR_FRACTION
    return cfg.lr * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


@dataclass
class SFTResult:
    out_dir: Path
    steps: int
    final_loss: float
    num_demos: int
    num_train_tokens: int  # assistant tokens per epoch
    resumed_from: int = 0
    num_truncated: int = 0  # conversations longer than max_length: their tail (last turns) is not trained
    num_emptied: int = 0  # of those, conversations left with no trained token (a correction's one turn cut)

    def summary(self) -> str:
        resumed = f", resumed at step {self.resumed_from}" if self.resumed_from else ""
        cut = (
            (
                f"; {self.num_truncated} of {self.num_demos} demos cut at max_length (their last turns are not "
                "trained: raise --max-length)"
                + (f", {self.num_emptied} of them left with no trained turn" if self.num_emptied else "")
            )
            if self.num_truncated
            else ""
        )
        return f"trained on {self.num_demos} demos, {self.steps} steps, final loss {self.final_loss:.3f}{resumed}{cut}"


def sft_example(tokenizer: Any, messages: list[Message], train_on_ack: bool = False) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one conversation: labels are the ids on trained assistant turns' tokens
    (all but the ACK and those flagged `loss: False`), IGNORE elsewhere."""
    tc = tokenize_conversation(tokenizer, messages)
    labels = [IGNORE] * len(tc.input_ids)
    assistant = [m for m in messages if m["role"] == "assistant"]
    for msg, (start, end) in zip(assistant, tc.assistant_spans):
        if not train_on_ack and msg is messages[1] and msg["content"] == ACK:
            continue
        if not trains(msg):
            continue
        labels[start:end] = tc.input_ids[start:end]
    return tc.input_ids, labels


def demo_files(demos: str | Path | Sequence[str | Path]) -> list[Path]:
    """One demos file or several (demos + DAgger corrections): always a list."""
    return [Path(demos)] if isinstance(demos, (str, Path)) else [Path(d) for d in demos]


def existing_demo_files(path: str | Path | Sequence[str | Path]) -> list[Path]:
    """`demo_files(path)`, each checked to exist (a one-line UserError naming the first missing one)."""
    files = demo_files(path)
    for p in files:
        if not p.is_file():
            raise UserError(f"demos file {p} does not exist; make one with `agentprm demos --out {p}`")
    return files


def load_demo_conversations(
    path: str | Path | Sequence[str | Path], max_demos: int | None = None
) -> tuple[list[list[Message]], str]:
    """Conversations of the successful demos and the correction records (`policy/dagger.py`) in `path`
    (a file or several, read in order) and the env they come from."""
    from agentprm.trajectory import read_trajectories

    files = existing_demo_files(path)
    trajs = []
    for p in files:
        trajs += [t for t in read_trajectories(p) if t.success or t.meta.get(CORRECTION)]
    names = ", ".join(map(str, files))
    if not trajs:
        raise UserError(f"{names} holds no successful demo; run `agentprm demos` again")
    envs = sorted({t.env for t in trajs})
    if len(envs) > 1:
        raise UserError(f"{names} mixes envs {envs}; give demos of one env")
    trajs = trajs[:max_demos] if max_demos else trajs
    return [trajectory_messages(t) for t in trajs], envs[0]


def _padded(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> tuple[Any, Any]:
    """(ids, labels) tensors of `rows`, right-padded to the longest (pads: `pad_id`, labels IGNORE)."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for r, (x, y) in enumerate(rows):
        ids[r, : len(x)] = torch.tensor(x)
        labels[r, : len(y)] = torch.tensor(y)
    return ids, labels


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths (less padding): sort within windows of 50 batches."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    window = batch_size * 50
    batches = []
    for lo in range(0, len(idx), window):
        part = sorted(idx[lo : lo + window], key=lambda i: lengths[i])
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def _schedule(lengths: list[int], cfg: SFTConfig) -> list[list[int]]:
    """Every batch of the run, fixed by the seed, so a resumed run continues the same order."""
    rng = random.Random(cfg.seed)
    per_epoch = math.ceil(len(lengths) / cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * per_epoch))
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    out: list[list[int]] = []
    while len(out) < total:
        out += _batches(lengths, cfg.batch_size, rng)
    return out[:total]


def resolve_base(base: str, out_dir: str | Path) -> str:
    """`tiny`, an HF dir, or a preset name (`smollm2`), which is written once next to `out_dir` as a
    plain HF dir (`<parent>/<name>-base`) and returned as that dir: the pipeline and `agentprm sft`
    both go through here."""
    from agentprm.policy.presets import PRESETS, materialize_preset

    if base in PRESETS:
        return str(materialize_preset(base, Path(out_dir).parent / f"{base}-base"))
    if base != "tiny" and not Path(base).is_dir():
        raise UserError(f"base {base} is neither `tiny`, a preset ({', '.join(PRESETS)}) nor a model dir")
    return base


def enable_recompute(model) -> None:
    """HF activation checkpointing, non-reentrant (inputs need no grad flag); one home for SFT and the PRM."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(f"{type(model).__name__} does not support activation checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _weights_dtype(cfg: SFTConfig):
    """bf16 frozen base weights under LoRA with --bf16 (half the memory; the adapters stay fp32 as
    peft keeps them); fp32 for full fine-tuning, whose AdamW updates bf16 weights would round away."""
    import torch

    return torch.bfloat16 if cfg.bf16 and cfg.lora_r > 0 else torch.float32


def _load_base(base: str, convs: list[list[Message]], cfg: SFTConfig):
    if base == "tiny":
        return build_tiny(convs, cfg.tiny, seed=cfg.seed)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_policy_dir(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if getattr(tokenizer, "chat_template", None) is None:
        raise UserError(f"the tokenizer in {base} has no chat template; use a chat/instruct model")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=_weights_dtype(cfg))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _trained_positions_loss():
    """A module computing (summed cross-entropy, count) over the trained positions only.

    The LM head runs on the hidden states of positions whose next token carries a label, not on every
    position: with SmolLM2's 49k vocabulary, full-sequence fp32 logits (and their gradient) for a batch
    of 8 x 700 tokens are ~1.1 GB each, for the ~7% of positions that are trained (measured: see
    docs/policy.md). Summing (not averaging) lets data-parallel ranks normalise by the global count.
    """
    import torch
    import torch.nn.functional as F

    class TrainedPositionsLoss(torch.nn.Module):
        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, ids, labels):
            base = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm
            hidden = base.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
            target = labels[:, 1:]
            sel = target != IGNORE
            logits = base.get_output_embeddings()(hidden[:, :-1][sel]).float()
            return F.cross_entropy(logits, target[sel], reduction="sum"), sel.sum()

    return TrainedPositionsLoss


def train_sft(
    demos: str | Path | Sequence[str | Path],
    base: str,
    out_dir: str | Path,
    cfg: SFTConfig | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    report_to: str | None = "tensorboard",
    logging_dir: str | Path | None = None,
) -> SFTResult:
    """Train a policy on the demos and save it to `out_dir`; resumes from `out_dir/checkpoint`.

    `demos`: a JSONL file or several (e.g. the expert demos and `agentprm dagger`'s corrections).

    `base`: `tiny`, a preset name (`smollm2`) or an HF dir. `on_step(step, total_steps, loss)` is called
    after every optimiser step (progress bars). Loss, lr and tokens/s go to `report_to`
    (`agentprm.tracking`; event files in `logging_dir`, default `out_dir/tb`). Ctrl-C (KeyboardInterrupt)
    writes a checkpoint at the last finished step before it propagates, so rerunning the same call resumes
    there. Under `accelerate launch` the global batch is split over the processes (`agentprm.distributed`).
    """
    import time

    import torch

    from agentprm.distributed import DataParallel
    from agentprm.interrupt import atomic

    cfg = cfg or SFTConfig()
    if cfg.micro_batch_size is not None and cfg.micro_batch_size < 1:
        raise UserError(f"micro_batch_size {cfg.micro_batch_size}: give at least 1 row (or none: the whole batch)")
    out = Path(out_dir)
    quiet_transformers()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    convs, env_name = load_demo_conversations(demos, cfg.max_demos)
    base_name = base
    lora = cfg.lora_r > 0
    if lora and base == "tiny":
        raise UserError("LoRA is for pretrained bases; train the tiny model fully (--lora-r 0)")
    dp = DataParallel(cfg.device)
    if dp.is_main:
        base = resolve_base(base, out)
    dp.barrier()
    base = resolve_base(base, out)  # every rank: the preset dir now exists
    ckpt = out / CKPT_DIR
    resumed = ckpt.is_dir() and (ckpt / "trainer_state.json").is_file()
    model: Any  # a causal LM, or a PeftModel around it under LoRA
    if resumed:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        state = json.loads((ckpt / "trainer_state.json").read_text())
        if state["config"] != _jsonable(cfg) or state["base"] != base_name:
            raise UserError(f"{ckpt} was written with other settings; delete it or use another --out")
        tokenizer = AutoTokenizer.from_pretrained(ckpt)
        # LoRA checkpoints hold only the adapters: the base weights never change.
        model = AutoModelForCausalLM.from_pretrained(base if lora else ckpt, dtype=_weights_dtype(cfg))
    else:
        model, tokenizer = _load_base(base, convs, cfg)
        state = {"step": 0}
    if lora:
        from peft import LoraConfig, PeftModel, get_peft_model

        if resumed:
            model = PeftModel.from_pretrained(model, ckpt / "adapter", is_trainable=True)
        else:
            lora_cfg = LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=cfg.lora_targets, task_type="CAUSAL_LM"
            )
            model = get_peft_model(model, lora_cfg)
    if cfg.gradient_checkpointing:  # recompute each layer's activations in backward: memory for ~30% time
        enable_recompute(model.get_base_model() if lora else model)
    model.config.use_cache = False

    examples = [sft_example(tokenizer, c, cfg.train_on_ack) for c in convs]
    num_truncated = sum(len(ids) > cfg.max_length for ids, _ in examples)
    examples = [(ids[: cfg.max_length], lab[: cfg.max_length]) for ids, lab in examples]
    num_emptied = sum(len(ids) >= cfg.max_length and all(x == IGNORE for x in lab) for ids, lab in examples)
    n_train_tokens = sum(sum(x != IGNORE for x in lab) for _, lab in examples)
    schedule = _schedule([len(ids) for ids, _ in examples], cfg)
    total = len(schedule)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))

    start = int(state["step"])
    if resumed and (ckpt / "optimizer.pt").is_file():
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
    torch.manual_seed(cfg.seed + start)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.to(dp.device).train()
    loss_module = dp.wrap(_trained_positions_loss()(model))

    def save(step: int) -> None:
        if dp.is_main:
            _save_checkpoint(model, tokenizer, opt, ckpt, step, cfg, base_name, lora)

    loss_val = float("nan")
    from agentprm.tracking import TB_DIR, Tracker

    tracker = Tracker(
        logging_dir or out / TB_DIR, report_to if dp.is_main else "none", run_name=f"sft {out}", config=_jsonable(cfg)
    )
    done = start
    last_save = time.monotonic()
    try:
        for step in range(start, total):
            rows, real = dp.shard([examples[i] for i in schedule[step]])
            for g in opt.param_groups:
                g["lr"] = lr_schedule(step, total, cfg)
            # Mean over the global batch's trained tokens (those with a next-token target); x world because
            # DDP averages gradients. Counted before any forward, so micro batches share one normaliser.
            count = sum(sum(t != IGNORE for t in y[1:]) for _, y in rows) if real else 0
            n_global = dp.sum(float(count))
            scale = dp.world / max(n_global, 1.0)
            opt.zero_grad(set_to_none=True)
            micro = cfg.micro_batch_size or len(rows)
            loss_total = 0.0
            for lo in range(0, len(rows), micro):
                part = rows[lo : lo + micro]
                ids, labels = _padded(part, pad_id)
                last = lo + micro >= len(rows)
                # DDP reduces gradients on the last micro batch's backward only
                sync = contextlib.nullcontext() if last or dp.world == 1 else loss_module.no_sync()
                with sync:
                    # Right padding needs no attention mask: under the causal mask no real token sees a pad,
                    # and pads carry no loss. Without a mask, SDPA takes its fused causal kernel: ~4x faster
                    # on CPU than the masked path, which materialises [B, H, L, L] (measured on TextCraft).
                    with torch.autocast(device_type=dp.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                        loss_sum, _ = loss_module(ids.to(dp.device), labels.to(dp.device))
                    if not real:
                        loss_sum = loss_sum * 0.0
                    (loss_sum * scale).backward()
                loss_total += float(loss_sum.detach())
            with atomic():  # Ctrl-C waits for the update to finish: checkpoints hold whole steps
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                done = step + 1
            loss_val = dp.sum(loss_total) / max(n_global, 1.0)
            if tracker.active:
                tracker.log(
                    {
                        "sft/loss": loss_val,
                        "sft/lr": lr_schedule(step, total, cfg),
                        "sft/tokens_per_s": tracker.throughput(sum(len(x) for x, _ in rows)),
                    },
                    done,
                )
            if on_step and dp.is_main:
                on_step(done, total, loss_val)
            due = cfg.checkpoint_every and done % cfg.checkpoint_every == 0
            late = cfg.checkpoint_minutes and time.monotonic() - last_save > 60 * cfg.checkpoint_minutes
            if (due or late) and done < total:
                save(done)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        if done > start:  # the last finished step becomes the resume point
            save(done)
        tracker.close()
        raise

    tracker.close()
    model.eval()
    if lora:
        model = _merged(model, base, cfg)  # downstream loads a plain HF dir
    if dp.is_main:
        with writing(out):  # a full disk: one clear error; META_FILE (written last, whole) is not there yet
            out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
        meta = {
            "env": env_name,
            "base": base_name,
            "base_dir": base,
            "demos": str(demos) if isinstance(demos, (str, Path)) else [str(d) for d in demos],
            "num_demos": len(convs),
            "steps": total,
            "final_loss": loss_val,
            "num_truncated": num_truncated,
            "config": _jsonable(cfg),
        }
        atomic_write_text(out / META_FILE, json.dumps(meta, indent=2))  # the finished-policy marker: whole or absent
        shutil.rmtree(ckpt, ignore_errors=True)
    dp.barrier()
    return SFTResult(
        out,
        total,
        loss_val,
        len(convs),
        n_train_tokens,
        resumed_from=start,
        num_truncated=num_truncated,
        num_emptied=num_emptied,
    )


def _merged(model, base: str, cfg: SFTConfig):
    """The LoRA model merged into fp32 base weights (a bf16 base is reloaded in fp32 first: adding small
    LoRA deltas to bf16 weights would round many of them away)."""
    import tempfile

    import torch

    if _weights_dtype(cfg) == torch.float32:
        return model.merge_and_unload()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        del model
        full = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        return PeftModel.from_pretrained(full, tmp).merge_and_unload()


def is_trained(out_dir: str | Path) -> bool:
    out = Path(out_dir)
    return (out / META_FILE).is_file() and not (out / CKPT_DIR).exists()


def _jsonable(cfg: SFTConfig) -> dict[str, Any]:
    d = asdict(cfg)
    for k in ("checkpoint_every", "checkpoint_minutes", "threads", "bf16", "gradient_checkpointing", "device"):
        d.pop(k)  # may change between a run and its resume
    return d


def _save_checkpoint(model, tokenizer, opt, ckpt: Path, step: int, cfg: SFTConfig, base: str, lora: bool) -> None:
    """Write to a temp dir, then swap it in: a kill mid-save leaves the previous checkpoint intact."""
    import torch

    tmp = ckpt.with_name(CKPT_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with writing(tmp, cleanup=remove(tmp)):  # a full disk: the partial copy goes, the previous one stays
        tmp.mkdir(parents=True)
        if lora:
            model.save_pretrained(tmp / "adapter")
        else:
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "config": _jsonable(cfg), "base": base}))
    old = ckpt.with_name(CKPT_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    shutil.rmtree(old, ignore_errors=True)
