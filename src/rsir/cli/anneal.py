"""`rsir anneal ...`: active learning of the metric space from similar/dissimilar pair answers."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)

from rsir.cli.anneal_serve import serve  # noqa: E402

app.command("serve")(serve)
