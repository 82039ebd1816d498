"""`rsir train cbir`: a head trained on the train side of a split, from class labels or labelled pairs."""

from __future__ import annotations

import csv
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rsir.cbir.evaluation import labels_of, split_of
from rsir.cbir.space import Space
from rsir.data.items import Archive
from rsir.models.heads import save_head
from rsir.train.metric_head import TrainConfig, train_on_labels, train_on_pairs


def read_pairs_file(path: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSV with header `id_a,id_b,similar` (similar: 1 or 0). Unknown ids and bad rows are clear errors."""
    row_of = {id_: i for i, id_ in enumerate(ids)}
    a, b, y = [], [], []
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"id_a", "id_b", "similar"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a CSV header with id_a,id_b,similar")
        for line, row in enumerate(reader, 2):
            try:
                a.append(row_of[row["id_a"]])
                b.append(row_of[row["id_b"]])
                y.append(int(row["similar"]))
            except KeyError as err:
                raise ValueError(f"{path}:{line}: unknown item id {err}") from None
            except ValueError:
                raise ValueError(f"{path}:{line}: `similar` must be 1 or 0, got {row['similar']!r}") from None
    return np.array(a, np.int64), np.array(b, np.int64), np.array(y, np.int8)


def train_cbir(
    archive: Archive,
    out: Path,
    *,
    encoder: str | None = None,
    split: str = "holdout:0.2",
    seed: int = 0,
    pairs_file: Path | None = None,
    config: TrainConfig | None = None,
    finetune_blocks: int = 0,
    progress: bool = True,
    runtime: str = "auto",
) -> dict:
    """Train on the gallery (train) side of the split only, so `eval cbir` with the same split is honest.

    ``finetune_blocks > 0`` also trains the encoder's last blocks (from class labels); the checkpoint then
    carries the encoder's weights (``encoder.pt``), which `Space.load(head=...)` loads back.
    """
    if finetune_blocks < 0:
        raise ValueError(f"--finetune must be >= 0, got {finetune_blocks}")
    if finetune_blocks and pairs_file is not None:
        raise ValueError("--finetune trains from class labels; it cannot be combined with --pairs")
    if (finetune_blocks or pairs_file is None) and not archive.is_labelled:
        raise ValueError("this archive has no labels: train from a pairs file (--pairs) instead")
    start = time.perf_counter()
    space = Space.load(encoder, runtime=runtime)
    feats = space.embed(archive, progress=progress)
    labels = labels_of(archive, feats.ids)
    parts = split_of(labels, split, seed)
    train_rows = parts.gallery
    meta = {"encoder": space.encoder.config.name, "weights_hash": space.encoder.weights_hash}
    encoder_state = None  # fine-tuned encoder weights, saved beside the head
    if finetune_blocks:
        config = config or TrainConfig()
        head, encoder_state = _finetune(
            archive, space, [feats.ids[r] for r in train_rows], [labels[r] for r in train_rows], config,
            finetune_blocks, meta, progress,
        )  # fmt: skip
        source = {"labels": "class", "n_train_items": len(train_rows), "finetuned_blocks": finetune_blocks}
    elif pairs_file is not None:
        config = config or TrainConfig(loss="balanced")
        a, b, y = read_pairs_file(pairs_file, feats.ids)
        allowed = np.zeros(len(feats.ids), bool)
        allowed[train_rows] = True
        keep = allowed[a] & allowed[b]  # pairs touching a test item would leak into the evaluation
        head = train_on_pairs(feats.vectors, a[keep], b[keep], y[keep], config, head_meta=meta, progress=progress)
        source = {
            "pairs_file": str(pairs_file),
            "n_pairs": int(keep.sum()),
            "n_pairs_dropped": int((~keep).sum()),
        }
    else:
        config = config or TrainConfig()
        head = train_on_labels(
            feats.vectors[train_rows],
            [labels[i] for i in train_rows],
            config,
            head_meta=meta,
            progress=progress,
        )
        source = {"labels": "class", "n_train_items": len(train_rows)}
    report = {"split": split, "seed": seed, "config": asdict(config), **source}
    save_head(head, out, report)
    _save_encoder(Path(out), encoder_state)
    return {**report, "out": str(out), "seconds": round(time.perf_counter() - start, 2)}


def _finetune(archive, space, train_ids, train_labels, config, blocks, meta, progress):
    """Partial fine-tuning of the encoder's last ``blocks`` blocks with the head: (head, encoder state)."""
    from rsir.train.finetune import finetune_on_labels

    row_of = {it.id: i for i, it in enumerate(archive.items)}
    encoder, head = finetune_on_labels(
        space.encoder, archive, [row_of[i] for i in train_ids], train_labels, config, n_tail=blocks,
        head_meta=meta, progress=progress,
    )  # fmt: skip
    return head, encoder.state_dict()


def _save_encoder(out: Path, state: dict | None) -> None:
    """``encoder.pt`` beside the head when the encoder was fine-tuned; else none (a stale one from an earlier
    run into the same folder would be loaded with this head)."""
    import torch

    from rsir.models.heads import ENCODER_WEIGHTS

    if state is None:
        (out / ENCODER_WEIGHTS).unlink(missing_ok=True)
        return
    tmp = out / f".{ENCODER_WEIGHTS}.tmp"
    torch.save(state, tmp)
    tmp.replace(out / ENCODER_WEIGHTS)  # atomic: a killed run never leaves half an encoder beside a head
