"""`rsir anneal ...`: active learning of the metric space from similar/dissimilar pair answers."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
