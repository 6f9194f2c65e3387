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


def test_exact_dedup_keeps_the_smallest_key_and_leaves_its_input_unchanged():
    from pipeline.sources.exact_dedup import _Apply, _duplicates
    verdicts = list(_duplicates((b"hash", [("000001:000000001", "b"), ("000000:000000001", "a"),
                                            ("000002:000000001", "c")])))
    assert verdicts == [("000001:000000001", "a"), ("000002:000000001", "a")]
    first, copy = Document("a", "", "lines", "same text", {}), Document("b", "", "lines", "same text", {})
    [kept] = _Apply("exact_dedup").process(("000000:000000001", {"doc": [first], "duplicate_of": []}))
    [dropped] = _Apply("exact_dedup").process(("000001:000000001", {"doc": [copy], "duplicate_of": ["a"]}))
    assert kept == ("000000:000000001", first)
    rejected = dropped.value[1]
    assert rejected.doc.metadata == {"duplicate_of": "a"} and copy.metadata == {}  # Beam's input is not changed
