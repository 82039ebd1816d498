"""`rsir anneal ...`: active learning of the metric space from similar/dissimilar pair answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsir.cli.common import emit, open_archive_or_exit, table, user_errors
from rsir.cli.runtime import Runtime, check_runtime

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

ALL = "random,neighbours,mgue,bcgue,diversity,anneal-mgue,anneal-bcgue,default"


@app.command()
def simulate(
    archive: Path,
    out: Annotated[Path, typer.Option(help="Run folder: results.csv/json, curve.png, campaigns.db.")],
    strategies: Annotated[str, typer.Option(help="Comma-separated strategy names.")] = ALL,
    initial: Annotated[int, typer.Option(min=1, help="Pairs asked in the initial round.")] = 100,
    initial_strategy: Annotated[
        str, typer.Option(help="How the initial pairs are chosen (shared by all strategies of a seed).")
    ] = "mixed",
    per_round: Annotated[int, typer.Option(min=1, help="Pairs asked per round after the initial one.")] = 250,
    rounds: Annotated[int, typer.Option(min=0, help="Rounds after the initial one.")] = 8,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds 0..S-1 (split, initial pairs, training).")] = 3,
    db: Annotated[
        str | None, typer.Option(help="Campaign store: SQLite file or URL (postgresql+psycopg://...).")
    ] = None,
    split: Annotated[str, typer.Option(help="holdout:F = test-query fraction (stratified).")] = "holdout:0.2",
    k: Annotated[int, typer.Option("--k", min=1, help="Rounds are scored with map@K (test -> pool).")] = 20,
    encoder: Annotated[str | None, typer.Option(help="Encoder name (default efficientnet-lite0).")] = None,
    n_neighbours: Annotated[int, typer.Option(min=1, help="Neighbours per item in the candidate pool.")] = 10,
    n_random: Annotated[int, typer.Option(min=0, help="Random pairs in the candidate pool.")] = 2000,
    rule: Annotated[str, typer.Option(help="Oracle rule: share-any, same-set or jaccard:T.")] = "share-any",
    steps: Annotated[int, typer.Option(min=1, help="Head training steps per round (warm-started).")] = 40,
    closure: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Weight of the pairs answers imply by transitivity (0: off; default: the learner's)."
        ),
    ] = None,
    groups: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Weight of the group objective on the groups answers join (0: off; default: the learner's)."
        ),
    ] = None,
    full_labels: Annotated[bool, typer.Option(help="Also train the all-class-labels reference head.")] = True,
    name: Annotated[str, typer.Option(help="Campaign name prefix in the store.")] = "sim",
    threads: Annotated[int, typer.Option(min=1, help="Torch threads (1 is fastest on a busy machine).")] = 1,
    workers: Annotated[int, typer.Option(min=1, help="Campaigns run in parallel processes.")] = 1,
    runtime: Runtime = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Simulate ANNEAL campaigns (oracle answers from class labels) for every strategy x seed.

    Resumable: rerun the same command after a kill and it continues from the campaign store.
    """
    from rsir import api

    with user_errors():
        _check_options(strategies, initial_strategy, rule, split, encoder)
        check_runtime(runtime)
        result = api.simulate(
            open_archive_or_exit(archive, strict=False), out,
            strategies=tuple(s.strip() for s in strategies.split(",") if s.strip()), db=db, progress=True,
            seeds=seeds, initial=initial, initial_strategy=initial_strategy, per_round=per_round, rounds=rounds,
            split=split, k=k, encoder=encoder, runtime=runtime, rule=rule, n_neighbours=n_neighbours,
            n_random=n_random, train=_training(steps, closure, groups), full_labels=full_labels, name=name,
            threads=threads, workers=workers,
        )  # fmt: skip
    report = result.report
    public = {key: report[key] for key in ("rounds", "off_the_shelf", "full_labels")}
    if as_json:
        columns = ("strategy", "resolved", "seed", "round", "n_labelled", f"map@{k}")
        public["rounds"] = [{f: r[f] for f in columns} for r in public["rounds"]]
    emit(public, as_json, lambda r: _human(result, out, f"map@{k}"))


def _training(steps: int, closure: float | None, groups: float | None = None):
    from rsir import api

    given = {"closure": closure, "groups": groups}
    return api.PairTraining(steps=steps, **{k: v for k, v in given.items() if v is not None})


def _check_options(strategies: str, initial_strategy: str, rule: str, split: str, encoder: str | None) -> None:
    """Every name checked before the archive is embedded."""
    from rsir.active.oracle import parse_rule
    from rsir.active.strategies import strategy_names
    from rsir.cli import validate

    for name in [s.strip() for s in strategies.split(",") if s.strip()] or [""]:
        validate.choice("--strategies", name, strategy_names(), "strategy")
    validate.choice("--initial-strategy", initial_strategy, strategy_names(), "strategy")
    parse_rule(rule)
    validate.split(split)
    validate.encoder(encoder)


def _human(result, out: Path, metric: str) -> str:
    curves = result.curves()
    budgets = sorted({n for c in curves.values() for n in c})
    resolved = {r["strategy"]: r.get("resolved", r["strategy"]) for r in result.report["rounds"]}
    shown = {s: s if resolved.get(s, s) == s else f"{s} ({resolved[s]})" for s in curves}
    rows = [{"strategy": shown[s], **{str(n): c.get(n) for n in budgets}} for s, c in curves.items()]
    refs = "  ".join(
        f"{key.replace('_', ' ')}: {v[metric]:.4f}" for key in ("off_the_shelf", "full_labels")
        if (v := result.report.get(key)) and v.get(metric) is not None
    )  # fmt: skip
    head = f"{metric} (mean over seeds) by annotated pairs; {refs}"
    return f"{head}\n{table(rows)}\nwritten: {out / 'results.csv'}, {out / 'results.json'}, {out / 'curve.png'}"


# `rsir anneal serve` (the annotation app) lives in its own module; keep this registration.
from rsir.cli.anneal_serve import serve  # noqa: E402

app.command("serve")(serve)
from rsir.cli.anneal_serve import invite  # noqa: E402

app.command("invite")(invite)
