"""Data-parallel training under `accelerate launch` (DDP), shared by `sft` and `train-prm`.

`accelerate launch --num_processes K ... agentprm sft ...` (or `train-prm`) runs the unchanged command
in K processes. Each optimiser step takes the same global batch as a single-process run; rank r trains
on rows r, r+K, r+2K, ... of it, and the loss is normalised over the *global* batch, so the gradient
(averaged by DDP) and the reported loss equal the single-process run's up to float rounding. Rank 0
alone writes checkpoints and outputs; every rank resumes from the same checkpoint. Without
`accelerate launch` (WORLD_SIZE unset or 1) nothing here touches torch.distributed.

FSDP (for 3B-8B backbones on GPUs) is accelerate's choice at launch (`accelerate config` / `--use_fsdp`);
see docs/policy.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def launched_world_size() -> int:
    """Processes started by `accelerate launch` / torchrun (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


class DataParallel:
    """This process's place in a data-parallel run (world 1: a plain single-process run)."""

    def __init__(self, device: str = "auto"):
        import torch

        self.world = launched_world_size()
        self.rank = 0
        self.accelerator = None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(device)
        if self.world > 1:
            from accelerate import Accelerator

            # On CPU (or `accelerate launch --cpu`, which sets ACCELERATE_USE_CPU) the backend is gloo.
            self.accelerator = Accelerator(cpu=self._device.type == "cpu")
            self.rank = self.accelerator.process_index
            self.world = self.accelerator.num_processes
            self._device = self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self):
        return self._device

    def wrap(self, module: Any, method: str | Callable[..., Any] | None = None) -> Any:
        """A callable running `module.method(...)` (a name), `method(module, ...)` (a function, e.g. one
        that calls the module several times) or `module(...)`: itself at world 1, else through a DDP
        wrapper, since DDP syncs gradients only for passes that go through its own forward (one per step)."""
        if callable(method):
            fn = method
        elif method:

            def fn(m, *a, **k):
                return getattr(m, method)(*a, **k)
        else:

            def fn(m, *a, **k):
                return m(*a, **k)

        if self.accelerator is None:
            return lambda *a, **k: fn(module, *a, **k)
        import torch

        class _Call(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, *args, **kwargs):
                return fn(self.inner, *args, **kwargs)

        return self.accelerator.prepare_model(_Call(module))

    def shard(self, batch: Sequence[T]) -> tuple[list[T], bool]:
        """(this rank's rows of the global batch, whether they are real). A rank left without rows gets
        the first row as a stand-in (every rank must run forward and backward) whose loss weight is 0."""
        rows = list(batch[self.rank :: self.world])
        return (rows, True) if rows else ([batch[0]], False)

    def sum(self, value: float) -> float:
        """Sum of `value` over ranks."""
        if self.accelerator is None:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item())

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    def global_loss(
        self,
        q: Any,
        mask: Any,
        real: bool,
        loss_fn: Callable[[Any, Any], tuple[Any, ...]],
    ) -> tuple[Any, tuple[float, ...]]:
        """(a loss to backprop, the global batch's (loss, *stats) values) for a loss over per-row outputs.

        `q`, `mask` are this rank's [B_r, S_r] rows (in `shard` order). `loss_fn(q, mask)` must compute
        the loss of the whole batch from rows ordered rank 0's rows, then rank 1's, ... (the caller
        orders its items the same way; see `rank_order`). The rows of all ranks are gathered (detached),
        the global loss and its gradient with respect to them are computed on every rank, and the
        returned surrogate `world * <grad_r, q_r>` gives, after DDP's averaging, the exact gradient of
        the global loss.
        """
        if self.accelerator is None:
            out = loss_fn(q, mask)
            return out[0], _floats(out)
        import torch
        import torch.distributed as dist

        dev = q.device
        b = q.shape[0] if real else 0
        dims = torch.tensor([b, q.shape[1]], dtype=torch.long, device=dev)
        sizes = [torch.zeros_like(dims) for _ in range(self.world)]
        dist.all_gather(sizes, dims)
        bmax = max(int(s[0]) for s in sizes) or 1
        smax = max(int(s[1]) for s in sizes)
        qp = torch.zeros((bmax, smax), dtype=q.dtype, device=dev)
        mp = torch.zeros((bmax, smax), dtype=torch.bool, device=dev)
        qp[:b, : q.shape[1]] = q.detach()[:b]
        mp[:b, : q.shape[1]] = mask[:b]
        qs = [torch.zeros_like(qp) for _ in range(self.world)]
        ms = [torch.zeros_like(mp) for _ in range(self.world)]
        dist.all_gather(qs, qp)
        dist.all_gather(ms, mp)
        counts = [int(s[0]) for s in sizes]
        q_all = torch.cat([x[:n] for x, n in zip(qs, counts)]).requires_grad_(True)
        m_all = torch.cat([x[:n] for x, n in zip(ms, counts)])
        out = loss_fn(q_all, m_all)
        (grad,) = torch.autograd.grad(out[0], q_all)
        lo = sum(counts[: self.rank])
        g = torch.zeros_like(q)
        if real:
            g[:, :] = grad[lo : lo + b, : q.shape[1]]
        surrogate = self.world * (q * g).sum()
        return surrogate, _floats(out)

    def rank_order(self, batch: Sequence[T]) -> list[T]:
        """The global batch in the order `global_loss` gathers rows: rank 0's shard, rank 1's, ..."""
        return [x for r in range(self.world) for x in batch[r :: self.world]]


def _floats(values: Sequence[Any]) -> tuple[float, ...]:
    return tuple(float(v.detach()) if hasattr(v, "detach") else float(v) for v in values)
