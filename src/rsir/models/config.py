"""Encoder configs are data: what an encoder expects as input and what it outputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# BigEarthNet band order used by rsir.data.images (B01..B12 without B10); B04, B03, B02 are red, green, blue.
SENTINEL2_RGB = (3, 2, 1)


@dataclass(frozen=True)
class Preprocess:
    """Everything between a decoded image (float [C, H, W] in [0, 1]) and the encoder's input tensor."""

    size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    in_channels: int = 3
    # Bands picked from multispectral input when it has more bands than the encoder takes; None = by band
    # count (12 bands: BigEarthNet's Sentinel-2 RGB; otherwise the first bands, e.g. RGB of an RGBN GeoTIFF).
    bands: tuple[int, ...] | None = None


@dataclass(frozen=True)
class EncoderConfig:
    name: str
    family: str
    dim: int
    token_dim: int
    weights: str
    preprocess: Preprocess = field(default_factory=Preprocess)

    def to_dict(self) -> dict:
        return asdict(self)
