"""Archives and samples: items, image decoding and validation, splits, the embedded demo.

Kept light on purpose (the CLI imports it at startup): import the submodules you need, e.g.
``from rsir.data.archives import open_archive`` or ``from rsir.data.images import load_image``.
"""

from rsir.data.items import Archive, ImageError, Item, SkippedFile

__all__ = ["Archive", "ImageError", "Item", "SkippedFile"]
