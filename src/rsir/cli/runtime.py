"""The `--runtime` option shared by every command that embeds images (see rsir.models.runtime)."""

from __future__ import annotations

from typing import Annotated

import typer

# A plain string, checked where the encoder loads (an unknown name: one-line error, exit 2), so that
# `rsir --help` does not import torch to list the names.
RUNTIME_HELP = (
    "Runs the frozen image encoder: auto (ONNX Runtime where the encoder exports, else torch), onnx, torch, "
    "or onnx-int8 (faster, approximate: see docs/benchmarks.md)."
)
Runtime = Annotated[str, typer.Option(help=RUNTIME_HELP)]


def check_runtime(name: str) -> None:
    """An unknown runtime name is refused before any work (ValueError with the choices)."""
    from rsir.models.runtime import RUNTIMES

    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r} (--runtime); choose from {', '.join(RUNTIMES)}")
