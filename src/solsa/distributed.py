"""Data-parallel training across processes and machines on ``torch.distributed``.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``): every process (rank) walks the same shuffled batches, takes
its shard of each batch, and runs the online rule forward in time on it. The
online rules write ``.grad`` directly, so DistributedDataParallel's autograd
hooks never see their gradients; instead :meth:`DataParallel.all_reduce_grads`
sums every ``.grad`` over the ranks after each flush, at the scheduled update
points. Each shard keeps the *global* batch's per-sample loss weights, so the
sum is the gradient of the whole batch. Shards are padded to one size with
zero-weight copies, so every rank runs the same steps and flushes the same
number of times; early stop is decided once for all ranks. Rank 0 writes the
run files. gloo on CPU, NCCL on GPU.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

import torch

__all__ = ["DataParallel"]


class DataParallel:
    """This process's place in a data-parallel run; a world of one (no communication) by default."""

    def __init__(self, rank: int = 0, world: int = 1, owns_group: bool = False) -> None:
        self.rank, self.world, self._owns_group = rank, world, owns_group

    @classmethod
    def from_environment(cls, device: torch.device) -> "DataParallel":
        """Join the process group that ``torchrun`` describes in the environment (a world of one without it)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            if device.type == "cuda" and device.index is None:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return cls(dist.get_rank(), dist.get_world_size(), owns)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run files."""
        return self.rank == 0

    def shard(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's samples of a batch of ``n``: ``(indices, valid)``, ``ceil(n / world)`` of them; places
        past the batch repeat sample 0 with ``valid`` False (they get zero loss weight)."""
        per = math.ceil(n / self.world)
        idx = torch.arange(self.rank * per, (self.rank + 1) * per)
        valid = idx < n
        return torch.where(valid, idx, torch.zeros_like(idx)), valid

    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum every parameter's ``.grad`` over the ranks (one collective for all of them)."""
        if not self.active:
            return
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view_as(g))
            offset += g.numel()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the ranks (float64)."""
        if not self.active:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.all_reduce(t)
        return t.tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        """Leave the process group if this object joined it."""
        if self._owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owns_group = False

    def _device(self) -> torch.device:
        import torch.distributed as dist

        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
