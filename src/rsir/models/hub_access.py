"""Is the model hub reachable? One short probe per process instead of the hub libraries' retry loops.

Without internet, ``transformers`` / ``huggingface_hub`` retry every file with back-off: a mistyped or
uncached model name took 30-55 s to fail. :func:`prepare_hub` probes the hub endpoint once (a TCP
connect bounded by a thread join, since name resolution ignores socket timeouts); when it fails, the
process switches the hub libraries to offline mode, so models already in the local cache still load
and anything else fails at once.
"""

from __future__ import annotations

import os
import socket
import threading
from functools import cache
from urllib.parse import urlparse

PROBE_SECONDS = 2.0
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_requested() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARS)


def _endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


@cache
def hub_reachable(timeout: float = PROBE_SECONDS) -> bool:
    """One TCP connect to the hub endpoint (``HF_ENDPOINT`` or huggingface.co), at most ``timeout`` s."""
    if offline_requested():
        return False
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(_endpoint(), timeout=timeout).close()
            ok.append(True)
        except OSError:
            ok.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok and ok[0])


_switched: list[bool] = []  # go_offline() ran: offline because of the probe, not the user's setting


def go_offline() -> None:
    """Switch the hub libraries to their cache-only mode for the rest of this process."""
    if not offline_requested():
        _switched.append(True)
    os.environ["HF_HUB_OFFLINE"] = "1"
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: it read the variable at import time
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


def prepare_hub() -> bool:
    """True when the hub is reachable; otherwise go offline (cached models still load) and return False."""
    if hub_reachable():
        return True
    go_offline()
    return False


def offline_hint(what: str) -> str:
    endpoint = ":".join(map(str, _endpoint()))
    user_set = offline_requested() and not _switched
    why = "offline mode is set (HF_HUB_OFFLINE)" if user_set else f"the hub ({endpoint}) is unreachable"
    return f"{what} is not in the local model cache and {why}: connect to the internet once, or use an offline model"
