"""Turn decoded images into encoder input, following the encoder's Preprocess config."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rsir.data.pixels import stretch
from rsir.models.config import SENTINEL2_RGB, Preprocess


def select_bands(image: np.ndarray, prep: Preprocess) -> np.ndarray:
    """Map any band count onto the encoder's input channels (grey -> replicated, many -> chosen bands)."""
    channels = image.shape[0]
    if channels == prep.in_channels:
        return image
    if channels == 1:
        return np.repeat(image, prep.in_channels, axis=0)
    if channels < prep.in_channels:
        raise ValueError(f"image has {channels} bands; the encoder needs {prep.in_channels}")
    bands = prep.bands
    if bands is None:
        bands = SENTINEL2_RGB if channels == 12 and prep.in_channels == 3 else tuple(range(prep.in_channels))
    if len(bands) != prep.in_channels or max(bands) >= channels:
        raise ValueError(
            f"band selection {bands} does not fit a {channels}-band image / {prep.in_channels}-band encoder"
        )
    # Multispectral input was scaled over all bands; re-stretch the chosen ones so they use the full range
    # (the one 2-98 percentile stretch of rsir.data.pixels).
    return stretch(image[list(bands)])


def prepare(image: np.ndarray, prep: Preprocess) -> torch.Tensor:
    """float [C, H, W] in [0, 1] -> normalised float tensor [C', size, size]."""
    x = torch.from_numpy(np.ascontiguousarray(select_bands(image, prep), dtype=np.float32))
    if x.shape[-2:] != (prep.size, prep.size):
        x = F.interpolate(x[None], size=(prep.size, prep.size), mode="bilinear", antialias=True)[0]
    mean = torch.tensor(prep.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(prep.std, dtype=torch.float32)[:, None, None]
    return (x - mean) / std
