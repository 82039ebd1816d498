"""The `--runtime` option shared by every command that embeds images (see rsir.models.runtime)."""

from __future__ import annotations

from typing import Annotated

import click
import typer

RUNTIME_HELP = "Runs the frozen image encoder: auto (ONNX Runtime where the encoder exports, else torch), onnx, torch."
# Spelled out (not rsir.models.runtime.RUNTIMES) so `rsir --help` does not import torch.
Runtime = Annotated[str, typer.Option(help=RUNTIME_HELP, click_type=click.Choice(["auto", "onnx", "torch"]))]
