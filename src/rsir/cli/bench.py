"""`rsir bench`: one run on this machine, one table (or `--json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsir.cli.common import emit, user_errors


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Smoke-sized run (under ~2 minutes).")] = False,
    archive: Annotated[
        Path | None, typer.Option(help="Image archive for the extraction part (default: shared UC Merced).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure extraction vs forward-only throughput, ANN search vs exact, ANNEAL selection time, peak memory."""
    from rsir.bench.run import render, run_bench

    with user_errors():
        report = run_bench(quick=quick, archive=archive)
    emit(report, as_json, render)
