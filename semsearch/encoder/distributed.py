"""Training on several processes with torch.distributed (`torchrun ... -m semsearch train`).

Who this process is (`Ranks`, from the variables torchrun sets), the process group (gloo on
CPU, NCCL on CUDA), and the few collectives the loop needs. One process without torchrun is the
world of one: `Ranks()` — every helper is then a no-op and the loop runs exactly as before.

The contrastive loss gathers across ranks with `torch.distributed.nn.functional.all_gather`,
whose backward sends each rank the gradient of every rank's loss with respect to its own
vectors (as sentence-transformers' `gather_across_devices` and OpenCLIP's `gather_with_grad`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.nn.functional as F

from semsearch.errors import ConfigError, SemsearchError

# how long a collective waits for the other ranks before failing: a rank that died mid-step
# breaks gloo's connections at once; this bounds a rank that hangs instead
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


class RankLost(SemsearchError):
    """Another rank died or stopped answering; the run cannot go on."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (torchrun's RANK, WORLD_SIZE,
    LOCAL_RANK); the default is a single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0  # the process's GPU on its node

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs and writes the model folder and checkpoints."""
        return self.rank == 0

    def local(self, batch: list[int]) -> list[int]:
        """This rank's contiguous share of a global batch: rows r*L .. (r+1)*L, L = B / world.

        >>> Ranks(1, 2).local([10, 11, 12, 13])
        [12, 13]
        """
        size = len(batch) // self.world
        return batch[self.rank * size: (self.rank + 1) * size]

    def check_divides(self, name: str, value: int) -> None:
        """A global batch must split evenly over the ranks."""
        if value % self.world:
            raise ConfigError(f"{name} {value} does not split over {self.world} processes; "
                              f"make it a multiple of {self.world}")


SINGLE = Ranks()  # one process, no torchrun


def ranks_from_environment() -> Ranks:
    """The ranks torchrun describes in the environment; a single process without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def start(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (NCCL for CUDA, gloo otherwise) and return this rank's device:
    cuda:LOCAL_RANK on a GPU node."""
    import torch.distributed as dist

    if not ranks.distributed or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world,
                            timeout=COLLECTIVE_TIMEOUT)
    return device


def stop(ranks: Ranks) -> None:
    import torch.distributed as dist

    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def gather(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Every rank's (n, ...) tensor concatenated in rank order, (world * n, ...), with the
    gradient flowing back to each rank's own rows."""
    if not ranks.distributed:
        return tensor
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated for a private API; still the public one
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(tensor.contiguous()), dim=0)


def gather_uneven(tensor: torch.Tensor, counts: list[int], ranks: Ranks) -> torch.Tensor:
    """Like `gather`, when rank r holds counts[r] rows (known to every rank): padded to the
    largest count for the collective, the padding cut out again, rank order kept."""
    if not ranks.distributed:
        return tensor
    widest = max(counts)
    if widest == 0:
        return tensor[:0]
    padded = F.pad(tensor, (0, 0, 0, widest - len(tensor)))  # (widest, dim)
    everyone = gather(padded, ranks)  # (world * widest, dim)
    return torch.cat([everyone[r * widest: r * widest + n] for r, n in enumerate(counts)])


def contrastive_logits(anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                       negative_counts: list[int], scale: float, ranks: Ranks
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, world*L + M) logits of this rank's L anchors against the candidates of the whole
    global batch — every rank's positives in rank order, then every rank's hard negatives — and
    each anchor's label: anchor i of rank r has its positive at column r * L + i.

    With one rank this is InfoNCE's (B, B + M) logits and labels 0..B-1; the candidate order is
    the single-process one, so the loss is the same (sentence-transformers PR #3453 fixed an
    interleaved order that pointed anchors at hard negatives)."""
    candidates = torch.cat([gather(positives, ranks),
                            gather_uneven(negatives, negative_counts, ranks)])
    labels = torch.arange(len(anchors), device=anchors.device) + ranks.rank * len(anchors)
    return scale * anchors @ candidates.T, labels


def mean_over_ranks(value: float, ranks: Ranks) -> float:
    """The mean of a number over the ranks (a logged loss: every rank's local mean)."""
    if not ranks.distributed:
        return value
    import torch.distributed as dist

    tensor = _to_backend(torch.tensor([value], dtype=torch.float64))
    dist.all_reduce(tensor)
    return float(tensor.item()) / ranks.world


def any_rank(flag: bool, ranks: Ranks) -> bool:
    """True on every rank when it is true on any (a stop request must stop them all)."""
    if not ranks.distributed:
        return flag
    import torch.distributed as dist

    tensor = _to_backend(torch.tensor([1 if flag else 0], dtype=torch.int64))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def from_main(values: list[float | None], ranks: Ranks) -> list[float | None]:
    """Rank 0's numbers on every rank (validation scores, computed on rank 0 alone)."""
    if not ranks.distributed:
        return values
    import torch.distributed as dist

    tensor = torch.tensor([float("nan") if v is None else v for v in values], dtype=torch.float64)
    tensor = _to_backend(tensor)
    dist.broadcast(tensor, src=0)
    return [None if v != v else float(v) for v in tensor.cpu().tolist()]


def text_from_main(text: str | None, ranks: Ranks) -> str:
    """Rank 0's string on every rank (the tokenizer, trained once on rank 0), as UTF-8 bytes."""
    if not ranks.distributed:
        assert text is not None
        return text
    import torch.distributed as dist

    data = (text or "").encode("utf-8") if ranks.main else b""
    size = _to_backend(torch.tensor([len(data)], dtype=torch.int64))
    dist.broadcast(size, src=0)
    if not size.item():
        return ""
    buffer = torch.zeros(int(size.item()), dtype=torch.uint8)
    if ranks.main:
        buffer = torch.tensor(list(data), dtype=torch.uint8)
    buffer = _to_backend(buffer)
    dist.broadcast(buffer, src=0)
    return bytes(buffer.cpu().tolist()).decode("utf-8")


def error_from_main(message: str | None, ranks: Ranks) -> str | None:
    """Rank 0's error message (or None) on every rank, so that a check rank 0 alone makes
    (the output folder) stops every rank, not just rank 0 while the others wait."""
    if not ranks.distributed:
        return message
    text = text_from_main(message or "", ranks)
    return text or None


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()


def is_collective_failure(error: BaseException) -> bool:
    """Whether an exception is a collective failing because a peer died or timed out."""
    import torch.distributed as dist

    kinds = tuple(k for k in (getattr(dist, "DistError", None),
                              getattr(dist, "DistBackendError", None),
                              getattr(dist, "DistNetworkError", None)) if k is not None)
    if kinds and isinstance(error, kinds):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        word in text for word in ("gloo", "nccl", "connection", "peer", "timed out"))


def _to_backend(tensor: torch.Tensor) -> torch.Tensor:
    """NCCL collectives take CUDA tensors; gloo takes CPU ones."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return tensor.cuda()
    return tensor
