"""Partial fine-tuning of the encoder with the head: the last blocks learn, the frozen trunk's outputs are cached.

On a CPU, the trunk's forward pass is most of the cost; computing it once and training only the tail on cached
feature maps (augmented with flips and 90-degree rotations, which overhead imagery allows) makes fine-tuning
feasible on a laptop. With `n_tail` equal to the number of blocks it is full fine-tuning without augmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rsir.data.items import Archive
from rsir.embed.local import ArchiveImages
from rsir.models.encoders import ImageEncoder
from rsir.models.heads import ResidualHead
from rsir.train.loop import FnObjective, fit
from rsir.train.metric_head import TrainConfig, class_batches, make_loss, multi_hot, new_head, pair_tuple


def trunk_outputs(
    trunk: Callable[[torch.Tensor], torch.Tensor],
    archive: Archive,
    rows: Sequence[int],
    encoder: ImageEncoder,
    batch_size: int = 32,
    progress: bool = True,
) -> torch.Tensor:
    loader = torch.utils.data.DataLoader(
        ArchiveImages(archive, list(rows), encoder), batch_size=batch_size, num_workers=1
    )
    maps = []
    with torch.no_grad():  # not inference_mode: the tail's backward pass needs these as saved inputs
        for x, _ in tqdm(loader, desc="trunk features", disable=not progress):
            maps.append(trunk(x))
    return torch.cat(maps)


def _dihedral(fmaps: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    k = int(torch.randint(4, (1,), generator=gen))
    out = torch.rot90(fmaps, k, dims=(2, 3))
    return out.flip(3) if torch.rand(1, generator=gen) < 0.5 else out


def finetune_on_labels(
    encoder: ImageEncoder,
    archive: Archive,
    rows: Sequence[int],
    labels: Sequence[Sequence[str]],
    config: TrainConfig = TrainConfig(),
    *,
    n_tail: int = 2,
    tail_lr: float = 1e-4,
    head_meta: dict | None = None,
    progress: bool = True,
) -> tuple[ImageEncoder, ResidualHead]:
    """Train the encoder's last ``n_tail`` blocks and a head from class labels of ``archive.items[rows]``."""
    from rsir.models.runtime import frozen_pass

    # The frozen trunk on the encoder's runtime (ONNX Runtime when it exports): its maps are plain tensors.
    fmaps = trunk_outputs(frozen_pass(encoder, f"trunk:{n_tail}"), archive, rows, encoder, progress=progress)
    head = finetune_on_maps(
        encoder, fmaps, labels, config, n_tail=n_tail, tail_lr=tail_lr, head_meta=head_meta, progress=progress
    )
    return encoder.eval(), head


def finetune_on_maps(
    encoder: ImageEncoder,
    fmaps: torch.Tensor,
    labels: Sequence[Sequence[str]],
    config: TrainConfig = TrainConfig(),
    *,
    n_tail: int = 2,
    tail_lr: float = 1e-4,
    head_meta: dict | None = None,
    progress: bool = True,
) -> ResidualHead:
    """Train ``encoder``'s tail (in place) and a new head on cached trunk outputs ``fmaps`` (one per label set).

    Benchmarks call this directly to share one trunk pass between seeds (the trunk is frozen).
    """
    _, tail = encoder.split(n_tail)
    hot = multi_hot(labels)
    hot_t = torch.from_numpy(hot)
    head = new_head(encoder.config.dim, config, None, head_meta or {})
    opt = config.adamw([{"params": tail.parameters(), "lr": tail_lr}, {"params": head.parameters()}])
    loss_fn, rng = make_loss(config.loss), np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)

    def loss_of(batch: np.ndarray) -> torch.Tensor:
        b = torch.from_numpy(batch)
        feats = F.normalize(tail(_dihedral(fmaps[b], gen)).mean(dim=1), dim=-1)
        return loss_fn(head(feats), indices_tuple=pair_tuple((hot_t[b] @ hot_t[b].T) > 0))

    head.train()
    tail.eval()  # frozen batch-norm statistics: small CPU batches would make them noisy
    objective = FnObjective(lambda _: class_batches(hot, config, rng), loss_of)
    fit(objective, opt, epochs=config.epochs, shard=False, progress=progress, desc="fine-tuning")
    encoder.eval()
    return head.eval()
