"""Readers for change-caption archives (bitemporal pairs + sentences), in their released layouts.

- **LEVIR-CC**: ``LevirCCcaptions.json`` + ``images/{train,val,test}/{A,B}/<name>.png`` (A = before).
  The JSON is Karpathy style (``images[].{filepath, filename, split, changeflag, sentences[].raw}``).
- **Dubai-CC**: ``captions/{Train,Validation,Test}_Dubai_CC.json`` + ``imgs_tiles/RGB/500_2000/<tile>.tif``
  (before) and ``imgs_tiles/RGB/500_2010/<tile>.tif`` (after). No change flag: a pair is "no change"
  when every caption says so (a pair where some annotators saw a change counts as changed).

``open_change_captions(root)`` recognises the layout from the folder and returns a
:class:`ChangeCaptionArchive`; indexing it gives torchgeo-style samples
``{"image": float32 tensor [2, C, H, W] in [0, 1], "captions": list[str], "changed": bool, "id": str}``.
Bad captions (missing, empty, not a string) are skipped and reported in ``skipped``; a pair left without
captions, or without its image files, is skipped and reported too. Ids are ``<split>/<file stem>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rsir.data.items import ImageError, SkippedFile

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "restval": "train", "val": "val", "validation": "val", "test": "test"}
LEVIR_JSON = "LevirCCcaptions.json"
DUBAI_FILES = {"train": "Train_Dubai_CC.json", "val": "Validation_Dubai_CC.json", "test": "Test_Dubai_CC.json"}
DUBAI_BEFORE = Path("imgs_tiles/RGB/500_2000")
DUBAI_AFTER = Path("imgs_tiles/RGB/500_2010")

_NO_CHANGE = re.compile(
    r"\b(no|nothing|not|none|without)\b[^.]*\b(chang\w*|differen\w*|modif\w*)"
    r"|\b(remain\w*|stay\w*|appears?|looks?|seems?|is|are|still|as)\b[^.]*\b(same|identical)\b|\bunchanged\b",
    re.IGNORECASE,
)


class ChangeCaptionError(ValueError):
    """A folder that is not a change-caption archive, or a caption file that cannot be read at all."""


def says_no_change(caption: str) -> bool:
    """True for sentences such as 'Nothing has changed.' or 'the scene is the same as before'."""
    return bool(_NO_CHANGE.search(caption))


@dataclass(frozen=True)
class ChangePair:
    id: str
    before: Path
    after: Path
    captions: tuple[str, ...]
    changed: bool
    split: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)


def normalise_split(value: str) -> str:
    split = _SPLIT_ALIASES.get(str(value).strip().lower())
    if split is None:
        raise ChangeCaptionError(f"unknown split {value!r}; expected one of {sorted(_SPLIT_ALIASES)}")
    return split


def load_pair_image(path: Path) -> np.ndarray:
    """float32 [C, H, W] in [0, 1]; raises ImageError."""
    from rsir.data.images import load_image

    return load_image(path)


@dataclass
class ChangeCaptionArchive:
    root: Path
    kind: str
    pairs: list[ChangePair]
    skipped: list[SkippedFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        import torch

        pair = self.pairs[index]
        before, after = load_pair_image(pair.before), load_pair_image(pair.after)
        if before.shape != after.shape:
            raise ImageError(f"{pair.id}: before {before.shape} and after {after.shape} differ in shape")
        return {
            "image": torch.from_numpy(np.stack([before, after])),
            "captions": list(pair.captions),
            "changed": pair.changed,
            "id": pair.id,
        }

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.pairs]

    def split(self, name: str) -> ChangeCaptionArchive:
        name = normalise_split(name)
        return ChangeCaptionArchive(self.root, self.kind, [p for p in self.pairs if p.split == name], self.skipped)

    def summary(self) -> str:
        counts = {s: sum(p.split == s for p in self.pairs) for s in SPLITS}
        changed = sum(p.changed for p in self.pairs)
        lines = [
            f"{len(self.pairs)} pairs ({self.kind}) in {self.root}: {counts}; {changed} changed; "
            f"{sum(len(p.captions) for p in self.pairs)} captions; {len(self.skipped)} skipped"
        ]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


def detect_layout(root: Path) -> str:
    root = Path(root)
    if not root.is_dir():
        raise ChangeCaptionError(f"{root} is not a folder" if root.exists() else f"dataset folder not found: {root}")
    if (root / LEVIR_JSON).is_file():
        return "levir-cc"
    if (root / "captions").is_dir() and any((root / "captions" / f).is_file() for f in DUBAI_FILES.values()):
        return "dubai-cc"
    raise ChangeCaptionError(
        f"{root} is not a change-caption archive: expected {LEVIR_JSON} + images/<split>/{{A,B}}/ (LEVIR-CC) "
        f"or captions/*_Dubai_CC.json + {DUBAI_BEFORE}/ and {DUBAI_AFTER}/ (Dubai-CC)"
    )


def open_change_captions(root: str | Path, split: str | None = None) -> ChangeCaptionArchive:
    """Read a LEVIR-CC or Dubai-CC folder (layout recognised from its files); optionally one split."""
    root = Path(root)
    kind = detect_layout(root)
    archive = _read_levir(root) if kind == "levir-cc" else _read_dubai(root)
    return archive.split(split) if split else archive


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChangeCaptionError(f"cannot read caption file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ChangeCaptionError(f"{path}: expected a JSON object with an 'images' list")
    return data


def _clean_captions(entry: dict, where: str, skipped: list[SkippedFile]) -> tuple[str, ...]:
    sentences = entry.get("sentences")
    if not isinstance(sentences, list):
        skipped.append(SkippedFile(Path(where), "no 'sentences' list"))
        return ()
    out = []
    for i, sent in enumerate(sentences):
        raw = sent.get("raw") if isinstance(sent, dict) else sent
        if not isinstance(raw, str):
            skipped.append(SkippedFile(Path(where), f"caption {i}: not a string ({type(raw).__name__})"))
            continue
        text = " ".join(raw.split())  # LEVIR-CC raws carry stray spaces and ' .' endings
        if text.endswith(" ."):
            text = text[:-2] + "."
        if not text or not any(c.isalnum() for c in text):
            skipped.append(SkippedFile(Path(where), f"caption {i}: empty"))
            continue
        out.append(text)
    return tuple(out)


def _make_pair(
    pair_id: str,
    before: Path,
    after: Path,
    captions: tuple[str, ...],
    split: str,
    changed: bool | None,
    skipped: list[SkippedFile],
) -> ChangePair | None:
    if not captions:
        skipped.append(SkippedFile(before, f"{pair_id}: no usable caption, pair skipped"))
        return None
    missing = [p for p in (before, after) if not p.is_file()]
    if missing:
        skipped.append(SkippedFile(missing[0], f"{pair_id}: image file missing, pair skipped"))
        return None
    if changed is None:
        changed = not all(says_no_change(c) for c in captions)
    return ChangePair(pair_id, before, after, captions, changed, split)


def _with_scene(pair: ChangePair, entry: dict) -> ChangePair:
    """The synth sets record each pair's before scene: pairs sharing one are siblings (hard negatives)."""
    synth = entry.get("synth")
    scene = synth.get("before_scene") if isinstance(synth, dict) else None
    return replace(pair, meta={"scene": scene}) if isinstance(scene, str) else pair


def _change_flag(flag: object) -> bool | None:
    """LEVIR-CC's ``changeflag`` (0 / 1, as a number or a string); ``None`` for anything else (missing, empty,
    unknown), so the captions decide, as for Dubai-CC."""
    if isinstance(flag, bool):
        return flag
    if isinstance(flag, int | float) and flag in (0, 1):
        return bool(flag)
    if isinstance(flag, str) and flag.strip() in ("0", "1"):
        return flag.strip() == "1"
    return None


def _read_levir(root: Path) -> ChangeCaptionArchive:
    data = _read_json(root / LEVIR_JSON)
    pairs: list[ChangePair] = []
    skipped: list[SkippedFile] = []
    for n, entry in enumerate(data["images"]):
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            skipped.append(SkippedFile(root / LEVIR_JSON, f"entry {n}: no filename"))
            continue
        try:
            split = normalise_split(entry.get("split") or entry.get("filepath") or "")
        except ChangeCaptionError as exc:
            skipped.append(SkippedFile(root / LEVIR_JSON, f"entry {n} ({name}): {exc}"))
            continue
        folder = root / "images" / str(entry.get("filepath") or split)
        pair_id = f"{split}/{Path(name).stem}"
        captions = _clean_captions(entry, f"{LEVIR_JSON}:{name}", skipped)
        changed = _change_flag(entry.get("changeflag"))
        pair = _make_pair(pair_id, folder / "A" / name, folder / "B" / name, captions, split, changed, skipped)
        if pair:
            pairs.append(_with_scene(pair, entry))
    return ChangeCaptionArchive(root, "levir-cc", pairs, skipped)


def _read_dubai(root: Path) -> ChangeCaptionArchive:
    pairs: list[ChangePair] = []
    skipped: list[SkippedFile] = []
    for split, filename in DUBAI_FILES.items():
        path = root / "captions" / filename
        if not path.is_file():
            skipped.append(SkippedFile(path, f"caption file for split {split!r} missing"))
            continue
        for n, entry in enumerate(_read_json(path)["images"]):
            name = entry.get("filename") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name:
                skipped.append(SkippedFile(path, f"entry {n}: no filename"))
                continue
            captions = _clean_captions(entry, f"{filename}:{name}", skipped)
            pair = _make_pair(
                f"{split}/{Path(name).stem}",
                root / DUBAI_BEFORE / name,
                root / DUBAI_AFTER / name,
                captions,
                split,
                None,
                skipped,
            )
            if pair:
                pairs.append(pair)
    return ChangeCaptionArchive(root, "dubai-cc", pairs, skipped)
