"""Concurrent searches of one process run as one batch through the store's own search function."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

SearchFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


class SearchBatcher:
    """Runs concurrent unfiltered searches as one call of ``search`` (the same function a single query uses,
    so a batched answer is the answer: re-ranking included).

    An exact index streams every stored vector per search call; a batch of B queries streams them once,
    so under load throughput grows almost B-fold (about 10x at B = 16 for 100k x 1280 floats). Batches
    form naturally: whatever queued while the previous batch ran, so an idle server adds no delay. Only
    requests for the same k share a batch: an approximate index's top k depends on k (IVF-PQ re-ranks
    ``rerank * k`` candidates, HNSW widens its beam to k), and a batched answer must equal a single one.
    """

    def __init__(self, search: SearchFn, max_batch: int = 64, linger_s: float = 0.002) -> None:
        self._search, self.max_batch, self.linger_s = search, max_batch, linger_s
        self.batches = 0  # batches run (tests and benchmarks read it)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._held: list = []  # requests taken from the queue that wait for a batch of their own k
        self._start_lock = threading.Lock()

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="rsir-search-batcher", daemon=True)
                self._thread.start()
        done: Future = Future()
        self._queue.put((query, k, done))
        return done.result()

    def _next_batch(self) -> list:
        first = self._held.pop(0) if self._held else self._queue.get()
        batch: list = [first]
        rest: list = []
        for item in self._held:
            (batch if item[1] == first[1] and len(batch) < self.max_batch else rest).append(item)
        # a short linger lets callers that the last batch just released rejoin this one
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            (batch if item[1] == first[1] else rest).append(item)
        self._held = rest
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            self.batches += 1
            try:
                scores, rows = self._search(np.concatenate([q for q, _, _ in batch]), batch[0][1])
            except Exception as err:  # a failed batch fails its requests, never the batcher
                for _, _, done in batch:
                    done.set_exception(err)
                continue
            for i, (_, _, done) in enumerate(batch):
                done.set_result((scores[i : i + 1], rows[i : i + 1]))
