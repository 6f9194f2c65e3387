"""A process's memory on the local runner: one glibc heap arena for all its threads, and freed memory
handed back to the system between units of work. Imports nothing heavy: the command line calls
`one_malloc_arena` first thing, before any thread exists."""
from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8


def _libc():
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def one_malloc_arena() -> None:
    """glibc gives each thread of a process its own heap arena, and memory freed in one is kept there: the
    local runner's worker processes run bundles on many threads, and their resident size grew with every
    stage (about 10 KB per document of the corpus on the CC job, 4 KB with one arena). One arena for the
    worker processes (the environment they inherit, unless already set) and for this one (mallopt)."""
    os.environ.setdefault("MALLOC_ARENA_MAX", "1")
    libc = _libc()
    try:
        libc.mallopt(M_ARENA_MAX, int(os.environ["MALLOC_ARENA_MAX"]))
    except (AttributeError, ValueError):   # not glibc, or a value glibc would not take
        pass


def release_memory() -> None:
    """Hand memory freed by a unit's work back to the system: Arrow's pool and the C heap keep it
    otherwise, and a worker's resident size would creep up unit after unit."""
    import pyarrow as pa
    pa.default_memory_pool().release_unused()
    try:
        _libc().malloc_trim(0)
    except AttributeError:   # not glibc
        pass
