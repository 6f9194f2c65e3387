"""What a whole-run step is to the engine: rounds of compact entries, and how its decisions change a
document in the final pass.

A `Round` has an entry layout (a NumPy structured dtype whose first two fields are `h`, a 64-bit hash that
picks the bucket and groups the entries, and `key`, the document's key), an `emit(view)` that returns the
entries of one unit, a result layout with a `key` field (the document the decision is about) and a
`decide(entries)` that turns one bucket's entries, sorted by (`h`, `key`), into results. Results with a
`kept` field name the document a duplicate was dropped for; the engine finds that document's id.

A `WholeRunStep` lists its rounds (each may read the results of the step's earlier rounds and the results
of the last round of each earlier step through the view; the last round is the step's decision, the only
one the final pass and later steps see), says which documents it drops (`dropped`, so that later steps see only the
survivors) and applies its decisions to one document (`apply`): the document kept (changed or not), a
`Rejected`, or None when the document was merged into another one.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

import numpy as np
import zstandard

from pipeline.engine.keys import DEFAULT_CHUNK_DOCS

if TYPE_CHECKING:
    from pipeline.engine.view import UnitView
    from pipeline.schema import Document, Rejected

DROP = np.dtype([("key", "<u8"), ("kept", "<u8")])


@dataclasses.dataclass
class Round:
    name: str
    entry: np.dtype
    result: np.dtype
    emit: Callable[["UnitView"], np.ndarray]
    decide: Callable[[np.ndarray], np.ndarray]


class WholeRunStep:
    stage: str = ""
    changes_text = False
    chunk_docs = DEFAULT_CHUNK_DOCS   # set by the engine to its unit size (a decision may group by unit)

    def rounds(self) -> list[Round]:
        raise NotImplementedError

    def dropped(self, view: "UnitView") -> np.ndarray:
        """Keys this step rejects, sorted: by default every key of its last round's results, when they
        name a kept document."""
        last = self.rounds()[-1]
        keys = [view.results(last.name)["key"]] if "kept" in last.result.names else []
        return np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)

    def wanted(self, view: "UnitView") -> list[int]:
        """Keys of other documents whose rows `apply` needs for this unit (fetched once per unit)."""
        return []

    def apply(self, key: int, doc: "Document", view: "UnitView") -> "Document | Rejected | None":
        raise NotImplementedError


# --- building blocks for decide --------------------------------------------------------------------

def group_starts(h: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a run of equal values of the sorted `h` begins."""
    first = np.ones(len(h), dtype=bool)
    if len(h) > 1:
        first[1:] = h[1:] != h[:-1]
    return first


def drops_after_first(h: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Entries sorted by (h, key): every member of a group of equal `h` but the first, with the first's key."""
    first = group_starts(h)
    group = np.cumsum(first) - 1
    first_keys = keys[first][group]
    out = np.zeros(int((~first).sum()), dtype=DROP)
    out["key"], out["kept"] = keys[~first], first_keys[~first]
    return out


def group_sizes(h: np.ndarray) -> np.ndarray:
    """For each entry of sorted `h`, the size of its group."""
    first = group_starts(h)
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, len(h)))
    return sizes[np.cumsum(first) - 1]


def sort_entries(entries: np.ndarray, *fields: str) -> np.ndarray:
    """Entries sorted by `fields` (the first is the primary key); ties keep a stable order."""
    order = np.lexsort(tuple(entries[f] for f in reversed(fields)))
    return entries[order]


# --- entries and results as shuffled ----------------------------------------------------------------

def pack(array: np.ndarray) -> bytes:
    """A structured array as shuffled: field by field, zstd-compressed (a unit's keys are sorted and
    share their high bytes, so they shrink to a fraction; hashes do not)."""
    return zstandard.ZstdCompressor(level=1).compress(b"".join(array[f].tobytes() for f in array.dtype.names))


def unpack(data: bytes, dtype: np.dtype) -> np.ndarray:
    raw = zstandard.ZstdDecompressor().decompress(data)
    n = len(raw) // dtype.itemsize
    out, offset = np.zeros(n, dtype=dtype), 0
    for name in dtype.names:
        width = dtype.fields[name][0].itemsize * n
        out[name] = np.frombuffer(raw, dtype=dtype.fields[name][0], count=n, offset=offset)
        offset += width
    return out
