"""Beam counters of the curation jobs, one namespace, named `<stage>.<what>`; the funnel is read from them.

A pass whose work may be reused by a later run (the engine's read pass) counts into a dict instead
(`capture`), keeps the dict beside its output and adds it to the Beam counters (`add_all`) whenever its
output is used, so that resumed work is counted once.
"""
from __future__ import annotations

import contextlib
import contextvars
import time

from apache_beam.metrics import Metrics

NAMESPACE = "smallgiant"
_cache: dict[str, object] = {}
_captured: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("captured", default=None)


@contextlib.contextmanager
def capture():
    """Within the block, `inc` adds to the yielded dict instead of the Beam counters (this thread only)."""
    counts: dict[str, int] = {}
    token = _captured.set(counts)
    try:
        yield counts
    finally:
        _captured.reset(token)


def add_all(counts: dict[str, int]) -> None:
    for name, n in counts.items():
        inc(name, n)


def inc(name: str, n: int = 1) -> None:
    captured = _captured.get()
    if captured is not None:
        captured[name] = captured.get(name, 0) + n
        return
    c = _cache.get(name)
    if c is None:
        c = _cache[name] = Metrics.counter(NAMESPACE, name)
    c.inc(n)


class timed:
    """Adds the wall time of a block, in microseconds, to the counter `<stage>.us`."""

    def __init__(self, stage: str):
        self.stage = stage

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        inc(f"{self.stage}.us", int((time.perf_counter() - self.t0) * 1e6))
        return False


def timed_iter(stage: str, items):
    """Yields from `items`, adding to `<stage>.us` only the time spent producing each item (not the time
    the fused downstream steps spend on it while this generator is suspended)."""
    it = iter(items)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            inc(f"{stage}.us", int((time.perf_counter() - t0) * 1e6))
            return
        inc(f"{stage}.us", int((time.perf_counter() - t0) * 1e6))
        yield item


def doc_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
