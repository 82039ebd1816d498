"""The embedded demo archive: a small UC Merced subset (21 classes x 8 scenes) shipped with rsir."""

from __future__ import annotations

from pathlib import Path

DEMO_CLASSES = 21
DEMO_PER_CLASS = 8


def demo_archive_path() -> Path:
    """Folder of the demo archive (scene-folders layout); see ATTRIBUTION.md next to it."""
    # Package data lives on disk next to this module (rsir is not installed zipped).
    return Path(__file__).resolve().parent / "ucmerced"
