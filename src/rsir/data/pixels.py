"""Pixel values: raw rasters of any dtype -> float32 [0, 1], and [0, 1] arrays -> display RGB.

Scaling rules (one scene gives the same array whatever dtype it was stored in):

* 8-bit data is divided by 255.
* Multispectral data (4 or more bands, or a BigEarthNet patch) of any other dtype gets a robust per-image
  2-98 percentile stretch, computed jointly over all bands so band ratios (the spectral signature) survive.
* Other 16-bit / integer data (grey or RGB) is divided by 65535 when it uses more than 14 bits (a 16-bit
  photo); if it never exceeds 16383 it is sensor counts or reflectance (e.g. Sentinel-2 x10000) and would
  be near black at /65535, so it is stretched as above.
* Float data already inside [0, 1] is kept; otherwise it is stretched. NaN / inf count as no-data -> 0.
"""

from __future__ import annotations

import numpy as np

# BigEarthNet Sentinel-2 L2A band order (B10 is absent in L2A); RGB are indexes 3, 2, 1.
BIGEARTHNET_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
BIGEARTHNET_RGB = (3, 2, 1)
STRETCH_PERCENTILES = (2.0, 98.0)


def stretch(x: np.ndarray) -> np.ndarray:
    """Joint 2-98 percentile stretch over all bands; percentiles from <= ~1M sampled values."""
    flat = x.reshape(-1)
    step = max(1, flat.size // (1 << 20))
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return np.zeros_like(x)
    lo, hi = np.percentile(sample, STRETCH_PERCENTILES)
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        return np.zeros_like(x)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def scale_to_unit(raw: np.ndarray, multispectral: bool) -> np.ndarray:
    """Native-dtype ``[C, H, W]`` -> float32 in [0, 1] following the module's scaling rules."""
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0
    x = raw.astype(np.float32)
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    if not multispectral and all_finite:
        lo, hi = float(x.min()), float(x.max())
        if np.issubdtype(raw.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
            return x
        if np.issubdtype(raw.dtype, np.integer) and lo >= 0 and 16383 < hi <= 65535:
            return x / 65535.0
    if not all_finite:
        x = np.where(finite, x, np.nan)
    out = stretch(x)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` in [0, 1] -> ``[H, W, 3]`` uint8 for thumbnails.

    12 bands are taken as BigEarthNet order (B04, B03, B02); other images use bands 0..2; grey is
    replicated. Multispectral picks are re-stretched for display since their joint stretch leaves
    visible bands dark next to the near infrared.
    """
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected [C, H, W], got shape {a.shape}")
    channels = a.shape[0]
    if channels == len(BIGEARTHNET_BANDS):
        rgb = stretch(a[list(BIGEARTHNET_RGB)])
    elif channels > 3:
        rgb = stretch(a[:3])
    elif channels == 3:
        rgb = a
    else:
        rgb = np.repeat(a[:1], 3, axis=0)
    rgb = np.nan_to_num(rgb, nan=0.0)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0).copy()
