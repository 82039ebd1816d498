"""Controls of text <-> scene models: a model that ignores the input that matters must score near chance.

- ``shuffle-images``: every image's features are another image's (a seeded derangement). At training it
  breaks the caption-image link, so the model can learn only text priors; at evaluation it breaks the
  gallery, so a model that reads images falls to chance (t2i R@10 = 10 / gallery size: 4.8 on UCM's 210).
- ``constant-text``: every query is the same vector (the mean caption feature), so text -> image ranks
  every caption alike (t2i R@10 = 10 / gallery size) and image -> text has nothing to find.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rsir.itsr.evaluate import derangement  # the one seeded derangement of every control
from rsir.itsr.features import SplitFeatures

CONTROLS = ("shuffle-images", "constant-text")
TRAIN_CONTROLS = ("shuffle-images",)


def check_control(control: str | None, allowed: tuple[str, ...] = CONTROLS) -> None:
    if control is not None and control not in allowed:
        raise ValueError(f"unknown control {control!r}; choose from {', '.join(allowed)}")


def apply_control(feats: SplitFeatures, control: str | None, seed: int = 0) -> SplitFeatures:
    """A copy of ``feats`` under ``control`` (None: ``feats`` itself)."""
    check_control(control)
    if control is None:
        return feats
    if control == "constant-text":
        text = np.broadcast_to(feats.text.mean(0, keepdims=True), feats.text.shape)
        return replace(feats, text=np.ascontiguousarray(text, dtype=np.float32))
    if feats.globals_ is None:
        raise ValueError("shuffle-images needs the frozen image features (not a fine-tuned tail)")
    return replace(feats, globals_=np.asarray(feats.globals_)[derangement(len(feats.pairs), seed)])
