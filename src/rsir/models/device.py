"""Torch device names checked against what this machine has, before any model or data is loaded."""

from __future__ import annotations


class DeviceUnavailable(ValueError):
    """A device name torch does not know, or one this machine does not have."""


def available_devices() -> list[str]:
    """Device names usable here: ``cpu``, then ``cuda``/``cuda:N`` per GPU, then ``mps``."""
    import torch

    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def check_device(name: str) -> str:
    """``name`` unchanged when this machine can run on it; else DeviceUnavailable naming the devices it has.

    Without this, ``cuda`` on a CPU-only build fails deep inside torch ("Torch not compiled with CUDA
    enabled") and ``gpu`` as a checkpoint deserialisation error.
    """
    if name == "cpu":  # the default: no torch import needed
        return name
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceUnavailable(_message(f"unknown device {name!r}")) from None
    if device.type == "cpu":
        return name
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count and (device.index is None or device.index < count):
            return name
        what = "CUDA is not available on this machine" if not count else f"this machine has {count} CUDA device(s)"
        raise DeviceUnavailable(_message(f"device {name!r}: {what}"))
    if device.type == "mps" and "mps" in available_devices():
        return name
    raise DeviceUnavailable(_message(f"device {name!r} is not available on this machine"))


def _message(problem: str) -> str:
    return f"{problem}; available here: {', '.join(available_devices())}"
