"""The `rsir` command. Each group lives in its own module; heavy imports happen inside commands."""

from __future__ import annotations

import typer

from rsir.cli import anneal, bench, cbir, itsr, serve, text

app = typer.Typer(
    help="Remote-sensing image retrieval: CBIR with metric learning, ANNEAL active learning, text-ITSR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help wraps at any width; rich's cut option names at 80 columns
)
cbir.register(app)
app.add_typer(anneal.app, name="anneal", help="ANNEAL: active learning of the metric space from pair answers.")
app.add_typer(itsr.app, name="itsr", help="Text <-> bitemporal image retrieval (GFF / TFF fusion).")
app.add_typer(text.app, name="text", help="Text <-> scene retrieval from single-date caption datasets.")
app.command("bench")(bench.bench)
app.command("serve")(serve.serve)


if __name__ == "__main__":
    app()
