"""The embedding space a command works in: an encoder, optionally followed by a trained head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsir.data.items import Archive
from rsir.embed.features import apply_head, archive_features
from rsir.embed.local import Embeddings
from rsir.models.encoders import DEFAULT_ENCODER, ImageEncoder, load_encoder
from rsir.models.heads import Head
from rsir.models.runtime import RUNTIMES, frozen_pass, set_runtime


@dataclass
class Space:
    encoder: ImageEncoder
    head: Head | None = None
    head_path: str | None = None
    head_hash: str | None = None

    @classmethod
    def load(cls, encoder: str | None = None, head: Path | None = None, runtime: str = "auto") -> Space:
        """A head checkpoint names its encoder; an explicit `encoder` that disagrees is an error.

        ``runtime`` runs the frozen encoder: ``auto`` (ONNX Runtime where it exports), ``torch`` or ``onnx``."""
        if runtime not in RUNTIMES:  # before any weights load
            raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
        if head is None:
            return cls(set_runtime(load_encoder(encoder or DEFAULT_ENCODER), runtime))
        from rsir.models.heads import load_head

        module, meta = load_head(head)
        trained_on = module.config.encoder or DEFAULT_ENCODER
        if encoder and encoder != trained_on:
            raise ValueError(f"head {head} was trained on encoder {trained_on!r}, not {encoder!r}")
        return cls(set_runtime(_encoder_for(trained_on, Path(head)), runtime), module, str(head), meta["hash"])

    def embed(self, archive: Archive, **kwargs) -> Embeddings:
        feats = archive_features(archive, self.encoder, **kwargs)
        return Embeddings(feats.ids, apply_head(feats.vectors, self.head), feats.failed, feats.runtime)

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Embed decoded images (float [C, H, W] in [0, 1]) exactly as archive items are embedded."""
        import torch

        from rsir.embed.local import normalise
        from rsir.models.preprocess import prepare

        batch = torch.stack([prepare(img, self.encoder.config.preprocess) for img in images])
        feats = normalise(frozen_pass(self.encoder)(batch).numpy())
        return apply_head(feats, self.head)


def _encoder_for(name: str, head: Path) -> ImageEncoder:
    """The named encoder, with the fine-tuned weights stored beside the head when there are any."""
    from rsir.models.encoders import load_finetuned_weights
    from rsir.models.heads import ENCODER_WEIGHTS

    encoder = load_encoder(name)
    weights = head / ENCODER_WEIGHTS
    return load_finetuned_weights(encoder, weights) if weights.exists() else encoder.eval()
