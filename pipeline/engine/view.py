"""One unit as a step sees it: its rows from the work area, the decisions about them so far, and the
line hashes of its documents (computed once, kept in the work area)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

from pipeline.engine import spill
from pipeline.engine.keys import Unit
from pipeline.engine.steps import unpack
from pipeline.lines import hash_lines
from pipeline.schema import Document, Rejected

if TYPE_CHECKING:
    from pipeline.engine.steps import WholeRunStep  # noqa: F401


class UnitView:
    def __init__(self, work: str, unit: Unit, chunk_docs: int, results: dict[str, list[bytes]],
                 dtypes: dict[str, np.dtype], steps: list["WholeRunStep"], position: int,
                 units: dict[int, Unit] | None = None, kept_ids: dict[int, str] | None = None):
        self.work, self.unit, self.chunk_docs = work, unit, chunk_docs
        self._raw, self._dtypes, self._results = results, dtypes, {}
        self.steps, self.position = steps, position
        self.units = units or {}
        self.kept_ids = kept_ids or {}
        self._dropped: np.ndarray | None = None
        self._lines: tuple[np.ndarray, np.ndarray] | None = None

    # --- decisions ---------------------------------------------------------------------------------
    def results(self, name: str) -> np.ndarray:
        """The results of round `name` about this unit's documents, sorted by key."""
        if name not in self._results:
            dtype = self._dtypes[name]
            parts = [unpack(b, dtype) for b in self._raw.get(name, [])]
            arr = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
            self._results[name] = arr[np.argsort(arr["key"], kind="stable")]
        return self._results[name]

    def results_for(self, name: str, key: int) -> np.ndarray:
        arr = self.results(name)
        lo, hi = np.searchsorted(arr["key"], [key, key + 1])
        return arr[lo:hi]

    def dropped(self) -> np.ndarray:
        """Keys rejected by the whole-run steps before the current one, sorted."""
        if self._dropped is None:
            parts = [s.dropped(self) for s in self.steps[: self.position]]
            self._dropped = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)
        return self._dropped

    def is_dropped(self, key: int) -> bool:
        d = self.dropped()
        i = np.searchsorted(d, key)
        return bool(i < len(d) and d[i] == key)

    # --- documents ---------------------------------------------------------------------------------
    def rows(self) -> Iterator[tuple[int, Document | Rejected]]:
        for row in spill.read_rows(self.work, self.unit):
            yield row["key"], spill.row_item(row)

    def docs(self) -> Iterator[tuple[int, Document]]:
        """The unit's documents that reach the current step (read-time rejects and earlier drops left out)."""
        for key, item in self.rows():
            if isinstance(item, Document) and not self.is_dropped(key):
                yield key, item

    def texts(self) -> Iterator[tuple[int, str]]:
        """(key, text) of every document of the unit, dropped or not (read-time rejects left out)."""
        for row in spill.read_rows(self.work, self.unit, ["key", "text", "stage"]):
            if not row["stage"]:
                yield row["key"], row["text"]

    def fetch(self, keys: list[int], columns: list[str] | None = None) -> dict[int, dict]:
        return spill.fetch(self.work, self.units, keys, self.chunk_docs, columns)

    # --- line hashes -------------------------------------------------------------------------------
    def line_hashes(self) -> tuple[np.ndarray, np.ndarray]:
        """(index, hashes): `index` rows (key, start, end) locate each document's line hashes (0 for a
        blank line) in `hashes`, in the order of `text.split("\\n")`."""
        if self._lines is None:
            base = spill.unit_path(self.work, self.unit, "")
            index, hashes = spill.load_array(base + ".index.npy"), spill.load_array(base + ".lines.npy")
            if index is None or hashes is None:
                index, hashes = self._hash_lines()
                spill.save_array(base + ".lines.npy", hashes)
                spill.save_array(base + ".index.npy", index)
            self._lines = index, hashes
        return self._lines

    def _hash_lines(self) -> tuple[np.ndarray, np.ndarray]:
        from pipeline.runtime.counters import timed
        keys, parts, pos, starts = [], [], 0, []
        with timed("hash_lines"):
            for key, text in self.texts():
                h = np.array(hash_lines(text.split("\n")), dtype=np.uint64)
                keys.append(key)
                starts.append(pos)
                parts.append(h)
                pos += len(h)
        index = np.zeros(len(keys), dtype=spill.LINE_DTYPE)
        index["key"], index["start"] = keys, starts
        index["end"] = np.append(index["start"][1:], pos) if len(keys) else []
        return index, (np.concatenate(parts) if parts else np.zeros(0, np.uint64))

    def lines_of(self, key: int) -> np.ndarray:
        index, hashes = self.line_hashes()
        i = np.searchsorted(index["key"], key)
        if i >= len(index) or index["key"][i] != key:
            raise KeyError(key)
        return hashes[int(index["start"][i]): int(index["end"][i])]

    def distinct_lines(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(line hash, key) for each distinct non-blank line of each document in `keys`."""
        index, hashes = self.line_hashes()
        wanted = np.isin(index["key"], keys)
        out_h, out_k = [], []
        for row in index[wanted]:
            h = np.unique(hashes[int(row["start"]): int(row["end"])])
            h = h[h != 0]
            out_h.append(h)
            out_k.append(np.full(len(h), row["key"], dtype=np.uint64))
        if not out_h:
            return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
        return np.concatenate(out_h), np.concatenate(out_k)

    def live_keys(self) -> np.ndarray:
        """Keys of the unit's documents that reach the current step, from the line index (no text read)."""
        index, _ = self.line_hashes()
        keys = index["key"]
        return keys[~np.isin(keys, self.dropped())]
