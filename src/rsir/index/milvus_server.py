"""A Milvus Lite file served to several processes: one local Milvus Lite server the processes connect to."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rsir.index.milvus_client import MilvusUnavailable

# `python -m milvus_lite`, with scipy.sparse imported first: the server's request threads import it lazily, and
# two first requests at once (two workers) raced into a half-initialised module ("no attribute 'bsr_array'").
_BOOT = "import runpy, scipy.sparse; runpy.run_module('milvus_lite', run_name='__main__', alter_sys=True)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def shared_lite_server(path: str, timeout_s: float = 60.0) -> Iterator[str]:
    """Milvus Lite holds its file in one process. For several processes (`rsir serve --workers N`), run it once
    as a local Milvus server on that file (``python -m milvus_lite server``) and yield its address; the
    server stops on exit."""
    port = _free_port()
    cmd = [sys.executable, "-c", _BOOT, "server", "--data-dir", path, "--host", "127.0.0.1"]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_for(proc, port, log, path, timeout_s)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_for(proc: subprocess.Popen, port: int, log, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            last = log.read().decode(errors="replace").strip().splitlines()[-1:]
            raise MilvusUnavailable(f"the Milvus Lite server on {path} exited: {' '.join(last) or proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                late = f"the Milvus Lite server on {path} did not start in {timeout_s:.0f} s"
                raise MilvusUnavailable(late) from None
            time.sleep(0.2)
