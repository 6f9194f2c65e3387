"""Beam counters of the CC job, one namespace, named `<stage>.<what>`; the funnel is read from them."""
from __future__ import annotations

import time

from apache_beam.metrics import Metrics

NAMESPACE = "smallgiant"
_cache: dict[str, object] = {}


def inc(name: str, n: int = 1) -> None:
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
