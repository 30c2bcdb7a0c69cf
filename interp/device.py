"""The one place that chooses where tensors live (CUDA when present, else CPU) and in which
precision a forward pass computes (`--dtype fp32 | bf16`)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

DTYPES = ("fp32", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device here; use --device cpu or auto")
    return torch.device(name)


def check_dtype(name: str) -> str:
    if name not in DTYPES:
        raise ValueError(f"--dtype {name!r}: give one of {', '.join(DTYPES)}")
    return name


def forward_precision(device: torch.device, dtype: str) -> AbstractContextManager:
    """The context of a forward pass in `dtype`: fp32 as the weights are, bf16 as autocast (on
    CUDA the fast path; on a CPU allowed, but without `torch.compile` slower than fp32)."""
    if check_dtype(dtype) == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
