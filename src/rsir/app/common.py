"""Pieces every rsir web app shares: safe file access, thumbnails, uploads, errors, token auth.

- ``safe_path``: a file named by the server's own records is only read when it lies inside the archive
  root *after* resolving symlinks, so a tampered manifest or a symlink cannot expose other files.
- ``ThumbnailCache``: JPEG thumbnails made once per (file, mtime, size) and kept on disk.
- ``read_upload`` / ``decode_upload``: size-capped uploads decoded by the data room (bad input -> 4xx).
- ``install_error_handlers``: every error is JSON ``{"detail": "..."}``; no stack trace reaches a client.
- ``TokenAuth`` + ``check_bind`` (from :mod:`rsir.app.auth`): off loopback every request must carry a token.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rsir.app.auth import BindError, TokenAuth, check_bind, is_loopback  # noqa: F401  (re-exported)

log = logging.getLogger("rsir.app")

UPLOAD_TYPES = ("image/", "application/octet-stream")
THUMB_SIZES = (128, 256, 512)
# Uploads are queries (resized to the encoder's input): 25 MP is a 5000 x 5000 scene, ~300 MB decoded as float32.
DEFAULT_UPLOAD_PIXELS = 25_000_000
UPLOAD_BANDS = 4  # values allowed per pixel of the cap: RGB(A) at full size, or fewer pixels of more bands


class OutsideRoot(PermissionError):
    """A path that resolves outside the folder it must stay in."""


# ---------------------------------------------------------------- paths


def safe_path(root: str | Path, candidate: str | Path) -> Path:
    """``candidate`` (relative to ``root``, or absolute) with symlinks resolved; OutsideRoot if it leaves root."""
    root_r = Path(root).resolve()
    path = Path(candidate)
    resolved = (path if path.is_absolute() else root_r / path).resolve()
    if not resolved.is_relative_to(root_r):
        raise OutsideRoot(f"{candidate} is outside the archive root")
    return resolved


# ---------------------------------------------------------------- thumbnails


def _render_thumbnail(source: Path, size: int) -> bytes:
    import io

    from PIL import Image

    from rsir.data.images import load_image, to_rgb_uint8

    img = Image.fromarray(to_rgb_uint8(load_image(source))).convert("RGB")
    img.thumbnail((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


class ThumbnailCache:
    """JPEG thumbnails on disk, keyed by the resolved file, its size and mtime, and the thumbnail size."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.generated = 0  # how many thumbnails this process rendered (tests check "once")
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _key(self, source: Path, size: int) -> str:
        st = source.stat()
        stamp = f"{source}|{st.st_size}|{st.st_mtime_ns}|{size}"
        return hashlib.sha256(stamp.encode()).hexdigest()[:32]

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, source: Path, size: int = 256) -> Path:
        """Path of the cached JPEG of ``source`` (rendered on first use); raises ImageError if unreadable."""
        key = self._key(source, size)
        out = self.folder / key[:2] / f"{key}.jpg"
        if out.is_file():
            return out
        with self._lock(key):  # concurrent requests for one new thumbnail render it once
            if not out.is_file():
                data = _render_thumbnail(source, size)
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}")
                tmp.write_bytes(data)
                os.replace(tmp, out)
                self.generated += 1
        return out


def default_thumbnail_dir() -> Path:
    from rsir.embed.cache import cache_root

    return cache_root() / "thumbs"


# ---------------------------------------------------------------- uploads


def require_multipart(request: Request) -> None:
    """Route dependency: runs before the body is validated, so a JSON post gets 415, not a vague 422."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise HTTPException(415, f"expected a multipart/form-data upload, got {ctype or 'no content type'!r}")


def read_upload(upload: UploadFile, max_bytes: int, field: str = "file") -> bytes:
    """The upload's bytes; 415 for a non-image content type, 413 when larger than ``max_bytes``, 400 when empty."""
    ctype = (upload.content_type or "application/octet-stream").lower()
    if not ctype.startswith(UPLOAD_TYPES):
        raise HTTPException(415, f"{field}: expected an image upload, got content type {ctype!r}")
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"{field}: upload larger than {max_bytes} bytes")
    if not data:
        raise HTTPException(400, f"{field}: empty upload")
    return data


def decode_upload(data: bytes, field: str = "file", max_pixels: int = DEFAULT_UPLOAD_PIXELS) -> np.ndarray:
    """Decode uploaded bytes with the data room's loader (float32 [C, H, W]); unreadable -> 400.

    More than ``max_pixels`` pixels, or more than ``4 * max_pixels`` values (pixels x bands) -> 413, decided
    from the image header before anything is decoded: a few hundred kB of deflate TIFF can claim 20000 x 20000
    px, or 1000 x 1000 px x 2000 bands, and would take gigabytes to decode."""
    from rsir.data.images import ImageTooLarge, load_image
    from rsir.data.items import ImageError

    with tempfile.TemporaryDirectory(prefix="rsir-upload-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(data)
        try:
            return load_image(path, max_pixels=max_pixels, max_values=UPLOAD_BANDS * max_pixels)
        except ImageTooLarge as err:
            reason = getattr(err, "reason", "too large")
            raise HTTPException(413, f"{field}: {reason}; queries are resized to a few hundred px") from None
        except ImageError as err:
            # the reason, not the message: the message names our temporary path
            reason = getattr(err, "reason", "unreadable")
            raise HTTPException(400, f"{field}: cannot use this image: {reason}") from None
        except (ValueError, OSError, MemoryError):
            raise HTTPException(400, f"{field}: cannot use this image: it could not be decoded") from None


# ---------------------------------------------------------------- errors


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body", "path"))
        parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors with one readable ``detail``; unexpected exceptions are logged here, never shown."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, BodyTooLarge):  # FastAPI reports any failure to parse a form as a 400
            return JSONResponse({"detail": str(exc.__cause__)}, status_code=413)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (see the server log)"}, status_code=500)


class BodyTooLarge(Exception):
    """Raised while streaming a request body (no Content-Length) once it passes the limit; answered 413."""


class BodyLimit:
    """ASGI middleware: a body declared larger than ``max_bytes`` is refused before it is read; a body of
    undeclared length (chunked) is counted as it streams in and cut off at the limit."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                response = JSONResponse({"detail": f"request body larger than {self.max_bytes} bytes"}, 413)
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(f"request body larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)
