"""Training a PRM on collected trajectories (paper Algorithm 1 for AgentPRM; PVM, ORM, MC baselines).

Objectives:
- `agentprm`: every batch runs one forward pass, recomputes the TD-GAE targets of each trajectory from
  that pass's own predictions (detached), and minimises L = L_Q + β·L_A (Algorithm 1: the labels move
  with the model).
- `pvm`: L_Q on the outcome assigned to every step.
- `orm`: L_Q at the last step only, target r (the ORM scores the whole trajectory; read its last step).
- `mc`: L_Q on MC labels (from `agentprm label --method mc`); `mc_advantage_loss` adds β·L_A (the paper
  does not say whether its MC PRM used L_A, §9 item 12).

Settings: the paper gives lr 1e-6 and at most 5 epochs (`preset="paper"`, for pretrained backbones);
the rest is not stated (§9 item 5). `preset="tiny"` is for the from-scratch default backbone on CPU.
Resumable: a checkpoint (model, optimiser, position) is written every `checkpoint_every` steps and at
each epoch end; rerunning the same command continues from it.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import torch

from agentprm.conversation import trajectory_messages
from agentprm.disk import atomic_write_text, remove, writing
from agentprm.distributed import DataParallel
from agentprm.interrupt import atomic
from agentprm.labels.outcome import outcome_trusted, outcome_value
from agentprm.labels.td_gae import td_gae_linear
from agentprm.prm.config import HOW_FIELDS, OBJECTIVES, PRESETS, PRMTrainConfig
from agentprm.prm.losses import advantage_loss, agentprm_loss, q_loss
from agentprm.prm.model import EncodedConversation, PRMMeta, ValueHeadPRM, encode_for_scoring
from agentprm.trajectory import Trajectory

CHECKPOINT_DIR = "checkpoint"


@dataclass
class TrainItem:
    trajectory_id: str
    encoded: EncodedConversation
    outcome: float
    static_targets: list[float | None] = field(default_factory=list)  # pvm/orm/mc; None = no target


def _what(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in HOW_FIELDS}


def build_items(
    trajectories: list[Trajectory],
    tokenizer: Any,
    cfg: PRMTrainConfig,
    mc_labels: dict[str, list[float | None]] | None = None,
    max_length: int = 1 << 30,
) -> tuple[list[TrainItem], dict[str, int]]:
    """Tokenised training items and counts of what was skipped and why."""
    skipped = {"error_status": 0, "no_steps": 0, "too_long": 0, "no_mc_label": 0}
    items = []
    for traj in trajectories:
        if not outcome_trusted(traj.status):
            skipped["error_status"] += 1  # no trustworthy outcome
            continue
        if traj.num_steps == 0:
            skipped["no_steps"] += 1
            continue
        r = outcome_value(traj, cfg.binary_outcome)
        n = traj.num_steps
        if cfg.objective == "mc":
            lab = (mc_labels or {}).get(traj.id)
            if lab is None or len(lab) != n:
                skipped["no_mc_label"] += 1
                continue
            static: list[float | None] = list(lab)
        elif cfg.objective == "orm":
            static = [None] * (n - 1) + [r]
        elif cfg.objective == "pvm":
            static = [r] * n
        else:
            static = []
        enc = encode_for_scoring(tokenizer, trajectory_messages(traj))
        if len(enc.input_ids) > max_length:
            skipped["too_long"] += 1
            continue
        items.append(TrainItem(traj.id, enc, r, static))
    return items, skipped


@lru_cache(maxsize=256)
def _td_matrix(n: int, gamma: float, lam: float, bootstrap: str) -> tuple[torch.Tensor, torch.Tensor]:
    W, c = td_gae_linear(n, gamma=gamma, lam=lam, bootstrap=bootstrap)
    return torch.tensor(W, dtype=torch.float32), torch.tensor(c, dtype=torch.float32)


def batch_targets(
    q: torch.Tensor, mask: torch.Tensor, items: list[TrainItem], cfg: PRMTrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, S] targets, [B, S] target mask) for a batch whose forward pass gave `q`."""
    target = torch.zeros_like(q)
    tmask = torch.zeros_like(mask)
    for i, it in enumerate(items):
        n = len(it.encoded.step_index)
        if cfg.objective == "agentprm":
            W, c = _td_matrix(n, cfg.gamma, cfg.lam, cfg.bootstrap)
            qi = q[i, :n].detach() if cfg.detach_targets else q[i, :n]
            target[i, :n] = W.to(q.device) @ qi + c.to(q.device) * it.outcome
            tmask[i, :n] = True
        else:
            for t, v in enumerate(it.static_targets):
                if v is not None:
                    target[i, t] = v
                    tmask[i, t] = True
    return target, tmask


def compute_loss(q, mask, items, cfg) -> tuple[torch.Tensor, float, float]:
    """(loss to backprop, L_Q, L_A) for one batch; L_A is reported even where it is not optimised."""
    target, tmask = batch_targets(q, mask, items, cfg)
    tmask = tmask & mask
    use_la = cfg.objective == "agentprm" or (cfg.objective == "mc" and cfg.mc_advantage_loss)
    if use_la:
        loss, lq, la = agentprm_loss(
            q, target, tmask, beta=cfg.beta, half_advantage=cfg.half_advantage, reduction=cfg.reduction
        )
        return loss, lq.item(), la.item()
    lq = q_loss(q, target, tmask, cfg.reduction)
    with torch.no_grad():
        la = advantage_loss(q, target, tmask, half=cfg.half_advantage, reduction=cfg.reduction)
    return lq, lq.item(), la.item()


def _lr_lambda(warmup: int) -> Callable[[int], float]:
    return lambda step: min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def batches_of_epoch(n_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's batches, a pure function of (seed, epoch): resume can skip the ones already done."""
    order = list(range(n_items))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n_items, batch_size)]


def grouped_step_values(
    model: ValueHeadPRM, batch: list[EncodedConversation], pad_id: int, slack: float = 1.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """`model.step_values(batch)` computed in length-sorted groups, so short conversations are not
    padded to the batch's longest: the same [B, S] values and mask, in batch order (each row's values
    do not depend on its batch-mates; the loss is then taken over the whole batch as before). A group
    grows while its padded size stays within `slack` x its real tokens."""
    order = sorted(range(len(batch)), key=lambda i: len(batch[i].input_ids))
    groups: list[list[int]] = [[]]
    real = 0
    for i in order:
        n = len(batch[i].input_ids)
        g = groups[-1]
        if g and (len(g) + 1) * n > slack * (real + n):
            groups.append([])
            g, real = groups[-1], 0
        g.append(i)
        real += n
    n_steps = max(len(e.step_index) for e in batch)
    parts = [(g, *model.step_values([batch[i] for i in g], pad_id)) for g in groups]
    if len(parts) == 1 and order == list(range(len(batch))):
        return parts[0][1], parts[0][2]
    dev = parts[0][1].device
    q = torch.zeros((len(batch), max(n_steps, 1)), device=dev, dtype=parts[0][1].dtype)[:, :n_steps]
    mask = torch.zeros((len(batch), n_steps), device=dev, dtype=torch.bool)
    rows, qs = [], []
    for g, gq, gm in parts:
        pad = n_steps - gq.shape[1]
        qs.append(torch.nn.functional.pad(gq, (0, pad)))
        mask[g, : gm.shape[1]] = gm
        rows.extend(g)
    q = torch.cat(qs)[torch.argsort(torch.tensor(rows, device=dev))]  # differentiable reassembly
    return q, mask


@dataclass
class TrainResult:
    out: Path
    steps: int
    items: int
    skipped: dict[str, int]
    first_loss: float
    last_loss: float
    resumed_from_step: int
    tokens: int = 0  # real (unpadded) tokens forwarded in this run (not counting steps before a resume)
    seconds: float = 0.0  # wall time of this run's optimiser steps

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def train_prm(
    trajectories: list[Trajectory],
    init: str | Path,
    out: str | Path,
    cfg: PRMTrainConfig,
    *,
    mc_labels: dict[str, list[float | None]] | None = None,
    on_step: Callable[[int, int, float, float], None] | None = None,
    on_rate: Callable[[float], None] | None = None,
    stop_after_steps: int | None = None,
    report_to: str | None = "tensorboard",
    logging_dir: str | Path | None = None,
) -> TrainResult:
    """Train a PRM initialised from the HF dir `init` and save it to `out` (HF dir + head + config).

    `on_step(step, total_steps, L_Q, L_A)` is called after every optimiser step (the CLI's progress bar),
    just after `on_rate(tokens_per_s)` (real tokens forwarded per second of training, padding not counted).
    `stop_after_steps` stops early after writing a checkpoint (used to test resume).
    Loss, L_Q, L_A, lr and tokens/s go to `report_to` (`agentprm.tracking`; event files in
    `logging_dir`, default `out/tb`).
    """
    from transformers import AutoTokenizer

    cfg.validate()
    out = Path(out)
    ckpt = out / CHECKPOINT_DIR
    torch.manual_seed(cfg.seed)
    resume_state = None
    if (ckpt / "state.json").is_file():
        resume_state = json.loads((ckpt / "state.json").read_text())
        if _what(resume_state["config"]) != _what(asdict(cfg)):
            raise ValueError(f"{ckpt} was written with another config; remove it or rerun with the same options")
        model, tokenizer, _ = ValueHeadPRM.load(ckpt)
    else:
        model = ValueHeadPRM.from_backbone(init, cfg.head_activation)
        tokenizer = AutoTokenizer.from_pretrained(str(init))
    dp = DataParallel(cfg.device)  # under `accelerate launch`: this process's share of each batch
    device = dp.device
    model.to(device).train()
    if cfg.gradient_checkpointing:
        from agentprm.policy.sft import enable_recompute

        enable_recompute(model.backbone)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    limit = getattr(model.backbone.config, "max_position_embeddings", None) or 1 << 30
    max_length = min(cfg.max_length or limit, limit)

    items, skipped = build_items(trajectories, tokenizer, cfg, mc_labels, max_length)
    if not items:
        hint = (
            f"; they exceed {max_length} tokens: use a backbone with more positions or a smaller --max-length cap"
            if skipped["too_long"]
            else ""
        )
        raise ValueError(f"no usable trajectories to train on (skipped: {skipped}){hint}")
    per_epoch = math.ceil(len(items) / cfg.batch_size)
    total = per_epoch * cfg.epochs

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps))
    step = 0
    log_rows: list[dict[str, Any]] = []
    if resume_state is not None:
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=device, weights_only=True))
        sched.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
        step = resume_state["step"]
        log_rows = resume_state.get("log", [])
    resumed_from = step

    def save_checkpoint() -> None:
        if not dp.is_main:
            return
        tmp = out / (CHECKPOINT_DIR + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        with writing(tmp, cleanup=remove(tmp)):  # a full disk: the partial copy goes, the previous one stays
            model.save(tmp, tokenizer, PRMMeta(cfg.objective, cfg.head_activation, str(init), max_length))
            torch.save(opt.state_dict(), tmp / "optimizer.pt")
            torch.save(sched.state_dict(), tmp / "scheduler.pt")
            (tmp / "state.json").write_text(json.dumps({"step": step, "config": asdict(cfg), "log": log_rows}))
        if ckpt.exists():
            shutil.rmtree(ckpt)
        tmp.rename(ckpt)  # atomic swap: a kill mid-save leaves the previous checkpoint intact

    if on_step is not None and step:
        on_step(step, total, float("nan"), float("nan"))
    from agentprm.tracking import TB_DIR, Tracker

    tracker = Tracker(
        logging_dir or out / TB_DIR, report_to if dp.is_main else "none", run_name=f"prm {out}", config=asdict(cfg)
    )
    n_tokens, seconds = 0, 0.0

    def result() -> TrainResult:
        return TrainResult(
            out, step, len(items), skipped, log_rows[0]["loss"], log_rows[-1]["loss"], resumed_from, n_tokens, seconds
        )

    # one DDP forward per step, in length-sorted groups (less padding; same values as one padded forward)
    step_values = dp.wrap(model, lambda m, enc, pad: grouped_step_values(m, enc, pad))
    try:
        for epoch in range(cfg.epochs):
            for b, idx in enumerate(batches_of_epoch(len(items), cfg.batch_size, cfg.seed, epoch)):
                if epoch * per_epoch + b < step:
                    continue  # done before the resume point
                batch = [items[i] for i in idx]
                rows, real = dp.shard(batch)  # this process's rows (all of them without accelerate launch)
                ordered = dp.rank_order(batch)
                t0 = time.perf_counter()
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                    q, mask = step_values([it.encoded for it in rows], pad_id)
                loss, (loss_v, lq, la) = dp.global_loss(
                    q.float(), mask, real, partial(compute_loss, items=ordered, cfg=cfg)
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                with atomic():  # Ctrl-C waits for the whole update: checkpoints hold whole steps
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    opt.step()
                    sched.step()
                    step += 1
                seconds += time.perf_counter() - t0
                n_tokens += sum(len(it.encoded.input_ids) for it in rows)  # this process's real tokens
                log_rows.append({"step": step, "epoch": epoch, "loss": loss_v, "l_q": lq, "l_a": la})
                rate = n_tokens / seconds if seconds > 0 else 0.0
                if tracker.active:
                    tracker.log(
                        {
                            "prm/loss": loss_v,
                            "prm/l_q": lq,
                            "prm/l_a": la,
                            "prm/lr": float(sched.get_last_lr()[0]),
                            "prm/tokens_per_s": rate,
                        },
                        step,
                    )
                if on_rate is not None and dp.is_main:
                    on_rate(rate)
                if on_step is not None and dp.is_main:
                    on_step(step, total, lq, la)
                last_of_epoch = b == per_epoch - 1
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or (last_of_epoch and step < total):
                    save_checkpoint()
                if stop_after_steps is not None and step >= stop_after_steps:
                    save_checkpoint()
                    tracker.close()
                    return result()
    except KeyboardInterrupt:  # Ctrl-C: the last finished step becomes the resume point
        if step > resumed_from:
            save_checkpoint()
        tracker.close()
        raise

    tracker.close()
    model.eval()
    train_info = {**asdict(cfg), "steps": step, "items": len(items), "skipped": skipped, "complete": True}
    if dp.is_main:
        # the log first: model.save writes the `complete` marker last, so a full disk anywhere leaves an
        # unfinished PRM that the rerun finishes from its checkpoint
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "train_log.jsonl", "".join(json.dumps(row) + "\n" for row in log_rows))
        model.save(out, tokenizer, PRMMeta(cfg.objective, cfg.head_activation, str(init), max_length, train_info))
        if ckpt.exists():
            shutil.rmtree(ckpt)
    dp.barrier()
    return result()


def is_trained(out: str | Path) -> bool:
    """True when `out` holds a finished PRM (a pipeline stage can be skipped)."""
    p = Path(out) / "prm_config.json"
    if not p.is_file():
        return False
    try:
        return bool((json.loads(p.read_text()).get("train") or {}).get("complete"))
    except (ValueError, AttributeError):  # torn or not a mapping (written before atomic writes): not finished
        return False


__all__ = [
    "OBJECTIVES",
    "PRESETS",
    "PRMTrainConfig",
    "TrainResult",
    "batch_targets",
    "build_items",
    "compute_loss",
    "grouped_step_values",
    "is_trained",
    "train_prm",
]
