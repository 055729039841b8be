"""Lazy torch access and the device/precision rules shared by every torch estimator."""

from __future__ import annotations

__all__ = ["autocast_dtype", "import_torch", "resolve_device"]

_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def import_torch():
    """Import torch on first use, with an install hint when it is missing."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a hard dependency
        raise ImportError(
            "protloc needs PyTorch for this step; install it with `pip install torch`."
        ) from exc
    return torch


def resolve_device(device="auto"):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` into a torch.device.

    ``"auto"`` picks CUDA when available, then Apple MPS, then the CPU. Asking for a
    device that is not there raises instead of silently running elsewhere.

    Examples
    --------
    >>> resolve_device("cpu").type
    'cpu'
    """
    torch = import_torch()
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}.")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for but CUDA is not available; use device='cpu' "
            "or device='auto'."
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was asked for but MPS is not available.")
    return resolved


def autocast_dtype(precision, device):
    """The autocast dtype for ``precision`` on ``device``, or None for plain fp32.

    ``"auto"`` means bf16 on CUDA devices that support it (fp16 otherwise) and fp32
    elsewhere: CPU autocast is slower than fp32 on most CPUs and changes results.

    Examples
    --------
    >>> import torch
    >>> autocast_dtype("auto", torch.device("cpu")) is None
    True
    """
    torch = import_torch()
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}.")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16
