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
