"""Simulated ANNEAL campaigns: every strategy x seed on a labelled archive, the oracle answering
from class labels, ``map@k`` (test queries -> unlabelled pool) after every round.

Each (strategy, seed) is one campaign in the store (``RUN/campaigns.db`` by default), so a killed
simulation resumes where it stopped. Results go to ``RUN/results.csv``, ``RUN/results.json`` and
``RUN/curve.png``; ``RUN/references.json`` caches the off-the-shelf and full-label references.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rsir.active.campaign import CampaignLoop, CampaignSettings, create_or_resume_campaign
from rsir.active.evaluator import SplitEvaluator as _Seed  # one seed's split and evaluation
from rsir.active.learner import PairTraining
from rsir.data.items import Archive

ALL_STRATEGIES = ("random", "neighbours", "mgue", "bcgue", "diversity", "anneal-mgue", "anneal-bcgue", "default")
FIELDS = ("strategy", "resolved", "seed", "round", "n_labelled", "map@20")  # columns for the default k = 20


def fields(k: int) -> tuple[str, ...]:
    """The result columns of a simulation evaluated with ``map@k``."""
    return (*FIELDS[:-1], f"map@{k}")


@dataclass(frozen=True)
class SimulationConfig:
    strategies: Sequence[str] = ALL_STRATEGIES
    seeds: int = 3
    initial: int = 100
    initial_strategy: str = "mixed"
    per_round: int = 250
    rounds: int = 8
    split: str = "holdout:0.2"
    k: int = 20
    encoder: str | None = None
    runtime: str = "auto"  # the frozen encoder's runtime (rsir.models.runtime); exact ones give equal features
    rule: str = "share-any"
    n_neighbours: int = 10
    n_random: int = 2_000
    train: PairTraining = field(default_factory=PairTraining)
    full_labels: bool = True
    name: str = "sim"  # campaign names are "<name>/<strategy>/seed<k>"
    threads: int = 1  # torch threads: one per process is fastest on a shared machine
    workers: int = 1  # campaigns run in parallel processes (one core each)


def _references(part: _Seed, seed: int, config: SimulationConfig, cache: Path, head_meta: dict) -> dict:
    """Off-the-shelf and full-label ``map@k`` for one seed, cached in ``references.json``."""
    key = f"{config.split}|seed{seed}|k{config.k}|{config.encoder}"
    if config.runtime == "onnx-int8":  # approximate features: references of their own
        key += "|onnx-int8"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    ref = known.get(key, {})
    if "off_the_shelf" not in ref:
        ref["off_the_shelf"] = part.evaluate(None)
    if config.full_labels and "full_labels" not in ref:
        from rsir.train.metric_head import TrainConfig, train_on_labels

        rows = part.gallery
        head = train_on_labels(
            part.vectors[rows], [part.labels[r] for r in rows], TrainConfig(seed=seed), head_meta=head_meta,
            progress=False,
        )  # fmt: skip
        ref["full_labels"] = part.evaluate(head)
    known[key] = ref
    cache.write_text(json.dumps(known, indent=1))
    return ref


def _settings(strategy: str, seed: int, config: SimulationConfig, extra: dict) -> CampaignSettings:
    return CampaignSettings(
        strategy=strategy,
        seed=seed,
        initial=config.initial,
        initial_strategy=config.initial_strategy,
        per_round=config.per_round,
        rounds=config.rounds,
        n_neighbours=config.n_neighbours,
        n_random=config.n_random,
        train=config.train,
        extra=extra,
    )


@dataclass
class _Task:
    """One (strategy, seed) campaign, self-contained so a worker process can run it."""

    name: str
    settings: CampaignSettings
    db: str
    part: _Seed
    rule: str
    pool_ids: list[str]
    pool_paths: list[str]
    head_meta: dict
    label: str = ""  # the strategy name as asked (``default``); settings hold the resolved one


def _run_task(task: _Task, on_round: Callable[[], None] | None = None) -> list[dict]:
    from rsir.active.oracle import LabelOracle
    from rsir.active.store import Store

    store = Store(task.db)
    try:
        cid = create_or_resume_campaign(store, task.name, task.settings, task.pool_ids, task.pool_paths)
        part = task.part
        loop = CampaignLoop(store, cid, part.vectors[part.gallery], part.evaluate, task.head_meta)
        tick = on_round or (lambda: None)
        for _ in loop.history():
            tick()  # rounds a previous run already stored
        oracle = LabelOracle([part.labels[r] for r in part.gallery], task.rule)
        history = loop.run(oracle, on_round=lambda _record: tick())
    finally:
        store.dispose()
    metric, s = f"map@{part.k}", task.settings
    return [
        {"strategy": task.label or s.strategy, "resolved": s.strategy, "seed": s.seed, "round": h["round"],
         "n_labelled": h["n_labelled"], metric: h[metric], "n_similar": h.get("n_similar"),
         "round_similar": h.get("round_similar"), "round_model_right": h.get("round_model_right")}
        for h in history
    ]  # fmt: skip


def _run_in_worker(task: _Task, queue) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    return _run_task(task, on_round=lambda: queue.put(1))


def _run_all(tasks: list[_Task], workers: int, bar) -> list[list[dict]]:
    """Run the campaigns, in ``workers`` processes when > 1 (they share the store safely)."""
    if workers <= 1 or len(tasks) <= 1:
        out = []
        for task in tasks:
            bar.set_postfix_str(task.name)
            out.append(_run_task(task, on_round=lambda: bar.update(1)))
        return out
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # torch and fork do not mix
    with ctx.Manager() as manager, ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx) as pool:
        ticks = manager.Queue()
        futures = [pool.submit(_run_in_worker, t, ticks) for t in tasks]
        while True:
            done, pending = wait(futures, timeout=0.5)
            try:
                while True:
                    bar.update(ticks.get_nowait())
            except queue_mod.Empty:
                pass
            if not pending:
                break
        return [f.result() for f in futures]


def simulate(
    archive: Archive,
    out: Path,
    config: SimulationConfig = SimulationConfig(),
    db: str | None = None,
    progress: bool = True,
) -> dict:
    """Run (or resume) every strategy x seed; write the results files; return the results JSON."""
    import torch
    from tqdm.auto import tqdm

    from rsir.active.store import Store, database_url
    from rsir.active.strategies import get_strategy, resolve
    from rsir.cbir.evaluation import labels_of, split_of
    from rsir.cbir.space import Space

    for name in (*config.strategies, config.initial_strategy):
        get_strategy(name)  # unknown names fail before any work
    if not archive.is_labelled:
        raise ValueError("simulation needs a labelled archive (the oracle answers from class labels)")
    start = time.perf_counter()
    torch.set_num_threads(config.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    space = Space.load(config.encoder, runtime=config.runtime)
    feats = space.embed(archive, progress=progress)
    labels = labels_of(archive, feats.ids)
    paths = {it.id: str(it.path) for it in archive.items}
    head_meta = {"encoder": space.encoder.config.name, "weights_hash": space.encoder.weights_hash}
    url = database_url(db or out / "campaigns.db")
    Store(url).dispose()  # create the tables once, before any worker touches them
    tasks, refs = [], {}
    for seed in range(config.seeds):
        split = split_of(labels, config.split, seed)
        part = _Seed(feats.vectors, labels, split.query, split.gallery, config.k)
        refs[seed] = _references(part, seed, config, out / "references.json", head_meta)
        pool_ids = [feats.ids[r] for r in split.gallery]
        extra: dict[str, object] = {"archive": str(archive.root), "encoder": head_meta["encoder"],
                                    "split": config.split, "rule": config.rule}  # fmt: skip
        if config.k != 20:  # the stored rounds' metrics are map@k: another k must not resume them
            extra["k"] = config.k  # (absent for 20, so campaigns stored before k was an option still resume)
        tasks += [
            _Task(f"{config.name}/{strategy}/seed{seed}", _settings(resolve(strategy), seed, config, extra), url,
                  part, config.rule, pool_ids, [paths[i] for i in pool_ids], head_meta, strategy)
            for strategy in config.strategies
        ]  # fmt: skip
    total = len(tasks) * (config.rounds + 1)
    with tqdm(total=total, desc="anneal", unit="round", disable=not progress) as bar:
        rows = [row for part_rows in _run_all(tasks, config.workers, bar) for row in part_rows]
    result = _result(rows, refs, config, time.perf_counter() - start)
    write_results(out, result)
    return result


def _mean_ref(refs: dict, key: str, k: int) -> dict:
    metric = f"map@{k}"
    per_seed = {str(s): r[key][metric] for s, r in refs.items() if key in r}
    if not per_seed:
        return {metric: None, "per_seed": {}}
    return {metric: float(np.mean(list(per_seed.values()))), "per_seed": per_seed}


def _result(rows: list[dict], refs: dict, config: SimulationConfig, seconds: float) -> dict:
    cfg = asdict(config)
    cfg["strategies"] = list(config.strategies)
    return {
        "rounds": rows,
        "metric": f"map@{config.k}",
        "off_the_shelf": _mean_ref(refs, "off_the_shelf", config.k),
        "full_labels": _mean_ref(refs, "full_labels", config.k),
        "config": cfg,
        "seconds": round(seconds, 1),
    }


def write_results(out: Path, result: dict) -> None:
    from rsir.active.plots import plot_curves

    k = int(result.get("config", {}).get("k", 20))
    with (out / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields(k), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result["rounds"])
    (out / "results.json").write_text(json.dumps(result, indent=1))
    plot_curves(result, out / "curve.png", f"map@{k}")


def mean_curves(rows: list[dict], metric: str = "map@20") -> dict[str, dict[int, float]]:
    """``{strategy: {n_labelled: mean over seeds}}`` (rounds align by number across seeds)."""
    by: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for r in rows:
        by.setdefault(r["strategy"], {}).setdefault(r["round"], []).append((r["n_labelled"], r[metric]))
    return {
        s: {
            int(round(np.mean([n for n, _ in v]))): float(np.mean([m for _, m in v])) for _, v in sorted(rounds.items())
        }
        for s, rounds in by.items()
    }
