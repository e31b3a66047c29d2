"""Choosing the device and the mixed precision it gains from."""

from __future__ import annotations

import contextlib

import torch

from semsearch.errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for `auto`; a named device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device here; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: MPS is not available here; use --device auto or cpu")
    if name not in ("cuda", "mps", "cpu") and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device {name!r}; use auto, cuda, mps or cpu")
    return torch.device(name)


def autocast(device: torch.device, amp: str):
    """A context manager running the forward pass in the precision `amp` asks for.

    auto: bf16 on CUDA cards that support it (tensor cores), fp32 elsewhere — on CPUs without
    AMX bf16 matmul is slower than fp32, and MPS gains little for this model size.
    """
    if amp == "off" or (amp == "auto" and not (device.type == "cuda"
                                              and torch.cuda.is_bf16_supported())):
        return contextlib.nullcontext()
    if amp not in ("auto", "bf16", "fp16"):
        raise ConfigError(f"unknown amp {amp!r}; use auto, bf16, fp16 or off")
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)
