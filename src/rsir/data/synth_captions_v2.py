"""Captions of the v2 semi-synthetic change set (rsir.data.synth_v2), written to be hard to shortcut.

- Unchanged pairs: sentences drawn from a pool of 9 content-free sentences (as in LEVIR-CC, where half the
  pairs share a handful of "the scene is the same as before" sentences); nothing about the scene.
- Changed pairs: every caption names the new content; each one independently names the place (half the
  time, in varied words), the old content (40%) and the size (35%), so many captions say nothing but what
  appeared, and identical captions across pairs happen, as in real sets.
- Some sentence frames are HELD OUT: used only for val/test captions (30% of them), never in training.
"""

from __future__ import annotations

import random

from rsir.data.synth_captions import class_words

NO_CHANGE_POOL = (
    "The scene is the same as before.",
    "There is no change.",
    "Nothing has changed.",
    "The two images look the same.",
    "No difference between the two images.",
    "The area remains unchanged.",
    "Everything stays the same.",
    "No obvious change can be seen.",
    "The scene did not change.",
)

P_PLACE, P_OLD, P_SIZE = 0.5, 0.4, 0.35
P_HELD_OUT = 0.3  # share of val/test captions written with held-out frames

# 3x3 cell of the change's centroid -> ways to say it ("in ..." / "at ..." phrases)
PLACE_WORDS: dict[str, tuple[str, ...]] = {
    "upper-left": ("in the upper left", "in the top left corner", "in the north-west", "at the top left"),
    "upper-centre": ("at the top", "in the upper middle", "along the top", "in the northern part"),
    "upper-right": ("in the upper right", "in the top right corner", "in the north-east", "at the top right"),
    "middle-left": ("on the left", "on the left side", "in the western part", "along the left edge"),
    "centre": ("in the centre", "in the middle", "in the central part", "near the centre"),
    "middle-right": ("on the right", "on the right side", "in the eastern part", "along the right edge"),
    "lower-left": ("in the lower left", "in the bottom left corner", "in the south-west", "at the bottom left"),
    "lower-centre": ("at the bottom", "in the lower middle", "along the bottom", "in the southern part"),
    "lower-right": ("in the lower right", "in the bottom right corner", "in the south-east", "at the bottom right"),
}

# size class (from the changed area) -> how the new content is quantified
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("a small patch of {x}", "a little {x}", "a small area of {x}", "some {x}"),
    "medium": ("a patch of {x}", "an area of {x}", "a block of {x}", "a stretch of {x}"),
    "large": ("a large area of {x}", "a big stretch of {x}", "much {x}", "a wide area of {x}"),
}

# Frames: {new} always; {place} "" or " in the ..."; {old} only in frames that say old content.
FRAMES_NEW = (
    "{new} appeared{place}",
    "{new_new} emerged{place}",
    "{new} can now be seen{place}",
    "the scene now has {new_new}{place}",
    "{new_new} showed up{place}",
)
FRAMES_OLD = (
    "{new} replaced {old}{place}",
    "{old}{place} turned into {new}",
    "{old} gave way to {new}{place}",
    "{old}{place} made room for {new}",
)
HELD_OUT_NEW = ("compared with before, {new} turned up{place}", "one can now see {new_new}{place}")
HELD_OUT_OLD = ("where there was {old}{place}, there is now {new}", "{new} took the place of {old}{place}")


def size_class(area: float) -> str:
    return "small" if area < 0.06 else "medium" if area < 0.15 else "large"


def _bare(noun: str) -> str:
    for article in ("a ", "an "):
        if noun.startswith(article):
            return noun[len(article) :]
    return noun


def _with_new(noun: str) -> str:
    bare = _bare(noun)
    return f"a new {bare}" if bare != noun else f"new {noun}"


def _finish(text: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + "."


def change_caption(
    rng: random.Random, old: str, new: str, place: str, area: float, held_out: bool = False
) -> tuple[str, dict]:
    """One caption for a change of ``old``-class content to ``new``-class content (``place``: a
    rsir.data.synth_shapes.place_of name; ``area``: changed share) and what it mentions."""
    old_nouns, _ = class_words(old)
    new_nouns, _ = class_words(new)
    says = {"place": rng.random() < P_PLACE, "old": rng.random() < P_OLD, "size": rng.random() < P_SIZE}
    noun = rng.choice(new_nouns)
    if says["size"]:
        new_phrase = rng.choice(SIZE_WORDS[size_class(area)]).format(x=_bare(noun))
        new_new = new_phrase
    else:
        new_phrase, new_new = noun, _with_new(noun)
    frames = (
        (HELD_OUT_OLD if says["old"] else HELD_OUT_NEW) if held_out else (FRAMES_OLD if says["old"] else FRAMES_NEW)
    )
    text = rng.choice(frames).format(
        new=new_phrase,
        new_new=new_new,
        old=rng.choice(old_nouns),
        place=" " + rng.choice(PLACE_WORDS[place]) if says["place"] else "",
    )
    return _finish(text), says | {"held_out": held_out}


def change_captions(
    rng: random.Random, old: str, new: str, place: str, area: float, n: int, held_out_share: float = 0.0
) -> tuple[list[str], list[dict]]:
    """``n`` distinct captions (fewer only if the slots cannot make ``n``) and what each one mentions."""
    out: list[str] = []
    info: list[dict] = []
    for _ in range(40 * n):
        text, says = change_caption(rng, old, new, place, area, held_out=rng.random() < held_out_share)
        if text not in out:
            out.append(text)
            info.append(says)
        if len(out) == n:
            break
    return out, info


def no_change_captions(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct sentences of the content-free pool."""
    return rng.sample(NO_CHANGE_POOL, k=min(n, len(NO_CHANGE_POOL)))


def held_out_frames() -> tuple[str, ...]:
    return HELD_OUT_NEW + HELD_OUT_OLD
