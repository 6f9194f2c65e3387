"""The shared source job, driven by a small line-per-document source defined here."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.base import Source, Step
from pipeline.sources.job import run

LOCAL = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]


class LineSource(Source):
    """One document per line; `#` lines are dropped while reading; a line `!` stops the file."""
    name = "lines"
    stages = ("comment", "strip", "length")

    def read(self, path):
        with open(path, "rb") as f:
            for n, raw in enumerate(f):
                try:
                    line = raw.decode("utf-8").rstrip("\n")
                except UnicodeDecodeError as exc:
                    yield DeadLetter(path, n, f"bad UTF-8: {exc}", preview=raw)
                    continue
                if line == "!":
                    raise OSError("device gone")
                doc = Document(f"lines/{n}", "", self.name, line, {"language": "en"})
                yield Rejected(doc, "comment", "a comment line") if line.startswith("#") else doc

    def steps(self):
        return [Step("strip", lambda d: Document(d.id, d.url, d.source, d.text.strip(), d.metadata)),
                Step("length", lambda d: d if len(d.text) >= 5 else f"{len(d.text)} chars < 5")]


def _rows(path):
    return [r for f in sorted(path.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_funnel_rejects_and_dead_letters(tmp_path):
    good = tmp_path / "a.txt"
    good.write_bytes(b"  hello world  \n# comment\nhi\n\xff\xfe bad\nfine text\n!\nnever read\n")
    out = tmp_path / "out"
    stats = run(LineSource(), f"{good},{tmp_path / 'missing.txt'}", str(out), LOCAL)
    assert sorted(r["text"] for r in _rows(out / "docs")) == ["fine text", "hello world"]
    rejects = {r["text"]: (r["stage"], r["reason"]) for r in _rows(out / "rejects")}
    assert rejects == {"# comment": ("comment", "a comment line"), "hi": ("length", "2 chars < 5")}
    dead = [r["reason"] for r in _rows(out / "dead_letters")]
    assert any(r.startswith("bad UTF-8") for r in dead)
    assert any("reading stopped after record 5: OSError: device gone" in r for r in dead)
    assert len(dead) == 3 and any(r.startswith("cannot read file: FileNotFoundError") for r in dead)
    rows = {r["stage"]: r for r in stats["stages"]}
    assert rows["read"]["docs_out"] == 4
    assert (rows["comment"]["docs_out"], rows["strip"]["docs_out"], rows["length"]["docs_out"]) == (3, 3, 2)
    assert rows["strip"]["bytes_in"] - rows["strip"]["bytes_out"] == 4
    assert stats["documents_out"] == 2 and stats["languages"] == {"en": 2}
    assert json.loads((out / "stats.json").read_text())["job"] == "lines"


def test_same_input_same_bytes(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("".join(f"document number {i}\n" for i in range(50)))
    for name in ("one", "two"):
        run(LineSource(), str(src), str(tmp_path / name), LOCAL, output_shards=2)
    one, two = sorted((tmp_path / "one/docs").iterdir()), sorted((tmp_path / "two/docs").iterdir())
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]


class FailingSource(LineSource):
    """A step that raises on one document."""

    def steps(self):
        def picky(d):
            if "boom" in d.text:
                raise KeyError("no such thing")
            return d
        return [Step("strip", picky)]


def test_a_step_that_raises_costs_one_document(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("first document\nboom goes this one\nlast document\n")
    stats = run(FailingSource(), str(src), str(tmp_path / "out"), LOCAL)
    assert sorted(r["text"] for r in _rows(tmp_path / "out/docs")) == ["first document", "last document"]
    [rej] = _rows(tmp_path / "out/rejects")
    assert rej["stage"] == "strip" and rej["reason"] == "strip failed: KeyError: 'no such thing'"
    assert stats["documents_out"] == 2


def test_exact_dedup_decides_on_hashes_and_keys_alone():
    import numpy as np

    from pipeline.dedup.exact import ENTRY, ExactDedup
    entries = np.array([(7, 1, 2 << 32 | 1), (7, 1, 1), (7, 1, 1 << 32 | 1), (7, 2, 5)], dtype=ENTRY)
    entries = entries[np.lexsort((entries["key"], entries["h2"], entries["h"]))]
    drops = ExactDedup()._decide(entries)
    assert drops.tolist() == [(1 << 32 | 1, 1), (2 << 32 | 1, 1)]   # same (h, h2): the smallest key stays


class CopiesSource(LineSource):
    stages = ("comment", "strip", "length", "exact_dedup")

    def dedup_steps(self):
        from pipeline.dedup.exact import ExactDedup
        return [ExactDedup()]


def test_exact_dedup_across_files_and_units_names_the_first_copy(tmp_path):
    for name, lines in (("a.txt", ["first words", "shared text", "more words"]),
                        ("b.txt", ["shared text", "other words", "first words"])):
        (tmp_path / name).write_text("".join(f"{line}\n" for line in lines))
    out = tmp_path / "out"
    stats = run(CopiesSource(), str(tmp_path / "*.txt"), str(out), LOCAL, chunk_docs=2)
    assert sorted(r["text"] for r in _rows(out / "docs")) == ["first words", "more words", "other words",
                                                               "shared text"]
    rejects = {r["id"]: (r["stage"], json.loads(r["metadata"])["duplicate_of"]) for r in _rows(out / "rejects")}
    # b.txt's line 0 is a copy of a.txt's line 1, its line 2 of a.txt's line 0 (another unit of a.txt)
    assert rejects == {"lines/0": ("exact_dedup", "lines/1"), "lines/2": ("exact_dedup", "lines/0")}
    assert {r["stage"]: r["docs_out"] for r in stats["stages"]}["exact_dedup"] == 4
