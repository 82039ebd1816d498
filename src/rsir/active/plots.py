"""Learning curves of a simulation: ``map@20`` against annotated pairs, mean and min-max over seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def curve_points(rows: list[dict], strategy: str, metric: str = "map@20") -> tuple[np.ndarray, ...]:
    """Per round of ``strategy``: mean annotated pairs, mean / min / max of ``metric`` over seeds."""
    by_round: dict[int, list[dict]] = {}
    for r in rows:
        if r["strategy"] == strategy and r.get(metric) is not None:
            by_round.setdefault(r["round"], []).append(r)
    rounds = sorted(by_round)
    n = np.array([np.mean([r["n_labelled"] for r in by_round[k]]) for k in rounds])
    vals = [np.array([r[metric] for r in by_round[k]]) for k in rounds]
    return n, np.array([v.mean() for v in vals]), np.array([v.min() for v in vals]), np.array([v.max() for v in vals])


def plot_curves(result: dict, path: Path, metric: str = "map@20") -> Path:
    """Write the PNG: one line per strategy with its seed band, the references as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rounds"]
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for k, s in enumerate(strategies):
        n, mean, lo, hi = curve_points(rows, s, metric)
        color = f"C{k % 10}"
        ax.plot(n, mean, marker="o", ms=3, color=color, label=s)
        ax.fill_between(n, lo, hi, color=color, alpha=0.15, linewidth=0)
    for key, style in (("off_the_shelf", ":"), ("full_labels", "--")):
        value = (result.get(key) or {}).get(metric)
        if value is not None:
            ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=f"{key.replace('_', ' ')} {value:.3f}")
    ax.set_xlabel("annotated pairs")
    ax.set_ylabel(f"{metric} (test -> pool)")
    seeds = len({r["seed"] for r in rows})
    ax.set_title(f"ANNEAL simulation: mean and min-max over {seeds} seed{'s' if seeds != 1 else ''}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def curve_svg(points: list[dict], baseline: float | None, metric: str = "map@20", size=(5.6, 3.0)) -> str:
    """One campaign's ``metric`` against answered pairs as a standalone SVG (``<svg ...>``; the curve is the
    group ``id="curve"``, the no-training baseline ``id="baseline"``); text stays text (searchable)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(p["n_labelled"], p[metric]) for p in points if p.get(metric) is not None]
    if pts and baseline is not None:
        pts.insert(0, (0, baseline))  # no answers yet: the encoder's own space
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "rsir", "font.size": 9}):
        fig, ax = plt.subplots(figsize=size, dpi=100)
        if baseline is not None:
            ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, gid="baseline",
                       label=f"no training {baseline:.3f}")  # fmt: skip
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o", ms=3.5, color="#1f6feb", linewidth=2, gid="curve", label=metric)
        if not pts and baseline is None:
            ax.text(0.5, 0.5, f"no {metric} yet: the archive has no test labels, or no round is trained",
                    ha="center", va="center", transform=ax.transAxes, color="#5f6b73")  # fmt: skip
        ax.set_xlabel("answered pairs")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if pts or baseline is not None:
            ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # no XML prolog: the document can be inlined in a page too
