"""The CC job end to end on crawls the tests write, on Beam's local runner."""
import filecmp
import json
import os

import pytest

from helpers import LOCAL, conversion, read_rows, record_id, sample_wet, write
from pipeline.cc.config import CCConfig
from pipeline.cc.job import run
from pipeline.lines import normalize_line
from pipeline.quality import QualityScorer
from pipeline.warc import gzip_member


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("crawl")
    pages = sample_wet(str(d / "a.warc.wet.gz"))
    out = str(d / "out")
    stats = run(CCConfig(input=str(d / "*.warc.wet.gz"), output=out), LOCAL)
    return pages, out, stats


def test_duplicates_leave_exactly_one_survivor_per_group(sample):
    pages, out, _ = sample
    kept = {r["id"] for r in read_rows(os.path.join(out, "docs"), ["id"])}
    copies = [p for p in pages if p.kind in ("exact", "near")]
    assert copies and not {p.id for p in copies} & kept
    assert {p.original for p in copies} <= kept
    rejects = {r["id"]: r for r in read_rows(os.path.join(out, "rejects"))}
    for p in copies:
        assert rejects[p.id]["stage"] == f"{p.kind}_dedup"
        assert p.original in rejects[p.id]["reason"]


def test_boilerplate_goes_and_unique_lines_stay(sample):
    pages, out, _ = sample
    docs = {r["id"]: r["text"] for r in read_rows(os.path.join(out, "docs"), ["id", "text"])}
    by_id = {p.id: p for p in pages}
    for doc_id, text in docs.items():
        page = by_id[doc_id]
        out_lines = set(text.split("\n"))
        assert not set(page.boilerplate) & out_lines
        content = [ln for ln in page.text.split("\n") if ln not in page.boilerplate]
        assert all(ln in out_lines for ln in content)


def test_languages_and_metadata(sample):
    pages, out, stats = sample
    docs = read_rows(os.path.join(out, "docs"))
    assert docs
    by_id = {p.id: p for p in pages}
    clean_en = {p.id for p in pages if p.lang == "en" and p.kind == "clean"}
    assert {d["id"] for d in docs} == clean_en
    meta = json.loads(docs[0]["metadata"])
    assert meta["language"] == "en" and meta["language_score"] >= 0.5
    assert {"crawl_date", "lines", "lines_removed_by_dedup", "warc_offset"} <= set(meta)
    assert all(by_id[d["id"]].url == d["url"] for d in docs)
    assert stats["languages"]["de"] == sum(1 for p in pages if p.lang == "de")


def test_funnel_reconciles(sample):
    pages, out, stats = sample
    with open(os.path.join(out, "stats.json")) as f:
        assert json.load(f)["documents_out"] == stats["documents_out"]
    rows = stats["stages"]
    assert rows[0]["docs_out"] == len(pages) == stats["documents_in"]
    for a, b in zip(rows, rows[1:]):
        assert b["docs_in"] == a["docs_out"]
    rejected = len(read_rows(os.path.join(out, "rejects"), ["id"]))
    assert rows[-1]["docs_out"] == stats["documents_out"] == len(pages) - rejected
    assert rows[3]["stage"] == "line_dedup" and rows[3]["lines_removed"] > 0
    assert not os.path.exists(os.path.join(out, "_staging"))


class _RejectWord(QualityScorer):
    name = "test_words"

    def score(self, doc):
        return {"test_word_count": doc.text.count("gardener")}

    def reject_reason(self, doc, scores):
        return "mentions a gardener" if scores["test_word_count"] else None


def test_keep_first_line_dedup_and_a_quality_scorer(tmp_path):
    pages = sample_wet(str(tmp_path / "a.warc.wet.gz"))
    stats = run(CCConfig(input=str(tmp_path / "a.warc.wet.gz"), output=str(tmp_path / "out"),
                         line_dedup="keep-first", scorers=[_RejectWord()]), LOCAL)
    docs = read_rows(str(tmp_path / "out" / "docs"))
    rejects = [r for r in read_rows(str(tmp_path / "out" / "rejects")) if r["stage"] == "quality.test_words"]
    assert rejects and all("gardener" in r["text"] for r in rejects)
    assert all(json.loads(r["metadata"])["test_word_count"] > 0 for r in rejects)
    assert all("gardener" not in d["text"] for d in docs)
    assert stats["stages"][-1]["stage"] == "quality.test_words"
    # keep-first: of the pages that passed document dedup, exactly one still shows each boilerplate line
    after_dedup = docs + [r for r in read_rows(str(tmp_path / "out" / "rejects"))
                          if r["stage"] not in ("exact_dedup", "near_dedup")]
    shown = [{normalize_line(x) for x in d["text"].split("\n")} for d in after_dedup]
    lines = {normalize_line(b) for p in pages for b in p.boilerplate}
    assert lines and all(sum(b in s for s in shown) == 1 for b in lines)


def _faulty_crawl(tmp_path):
    """A crawl folder: one file of sample pages with every kind of damage between them, one unreadable
    file; (its glob, the pages)."""
    from smallgiant.samples.crawl import make_pages, wet_bytes
    pages = make_pages(3)
    good = wet_bytes(pages)
    text = b"A perfectly ordinary page of English text that is long enough to be kept.\n" * 10
    corrupt = bytearray(gzip_member(conversion(text, record_id(901))))
    corrupt[len(corrupt) // 2] ^= 0xFF
    corrupt[len(corrupt) // 2 + 3] ^= 0xFF
    faults = [
        bytes(corrupt),                                                           # corrupt gzip member
        gzip_member(conversion(text, record_id(902), length_delta=+40)),          # truncated record
        gzip_member(conversion(text, record_id(903), length_delta=-20)),          # Content-Length lies
        gzip_member(conversion(b"caf\xe9 " + text, record_id(904))),              # not UTF-8
        gzip_member(conversion(b"\x00\x01\x02\x03" * 200, record_id(905))),        # binary
        gzip_member(conversion(b"", record_id(906))),                             # empty
        gzip_member(conversion(b"y" * (50 << 20), record_id(907))),               # 50 MB record
        b"this is not gzip",                                                      # garbage between members
    ]
    # insert each fault after some good record (member boundaries of `good` are found by re-splitting)
    members = _members(good)
    step = len(members) // (len(faults) + 1)
    mixed = []
    for i, m in enumerate(members):
        mixed.append(m)
        if i and i % step == 0 and faults:
            mixed.append(faults.pop(0))
    mixed += faults
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    write(str(crawl / "a.warc.wet.gz"), b"".join(mixed))
    os.symlink(str(tmp_path / "missing.warc.wet.gz"), str(crawl / "b.warc.wet.gz"))  # unreadable file
    return str(crawl / "*.warc.wet.gz"), pages


def test_faults_are_dead_letters_and_counts_reconcile(tmp_path):
    """Good records in = kept + rejected; bad records = dead letters, each with file, offset, reason."""
    spec, pages = _faulty_crawl(tmp_path)
    out = str(tmp_path / "out")
    stats = run(CCConfig(input=spec, output=out), LOCAL)

    dead = read_rows(os.path.join(out, "dead_letters"))
    assert stats["dead_letters"] == len(dead) == 9
    reasons = " | ".join(d["reason"] for d in dead)
    for why in ["corrupt gzip member", "truncated record", "does not end where", "invalid UTF-8", "binary",
                "empty record", "over the limit", "not a gzip member", "cannot open file"]:
        assert why in reasons
    assert all(d["file"] and d["offset"] >= -1 for d in dead)
    kept = read_rows(os.path.join(out, "docs"), ["id"])
    rejected = read_rows(os.path.join(out, "rejects"), ["id"])
    assert stats["documents_in"] == len(pages) == len(kept) + len(rejected)
    assert {r["id"] for r in kept + rejected} == {p.id for p in pages}


def test_a_file_read_in_parts_gives_what_the_whole_file_gives(tmp_path):
    """Split into byte ranges read at once (two workers), a damaged file gives the documents, rejects
    and dead letters of the file read front to back, in the same order."""
    spec, _ = _faulty_crawl(tmp_path)
    results = {}
    for split, args in ((0, LOCAL), (20_000, ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])):
        out = str(tmp_path / f"out-{split}")
        stats = run(CCConfig(input=spec, output=out, split_bytes=split, chunk_docs=50), args)
        results[split] = (stats, [read_rows(os.path.join(out, d)) for d in ("docs", "rejects", "dead_letters")])
    (whole, got_whole), (parts, got_parts) = results[0], results[20_000]
    assert whole["parts"] == whole["files"] == 2 and parts["parts"] > 4
    assert got_parts[0] == got_whole[0] and len(got_whole[0]) > 40                # kept documents, in order
    for a, b in zip(got_parts[1:], got_whole[1:]):
        assert sorted(map(str, a)) == sorted(map(str, b))                          # rejects, dead letters
    assert [r["offset"] for r in got_parts[2]] == [r["offset"] for r in got_whole[2]]
    assert {k: v for k, v in parts.items() if k in ("records", "documents_in", "documents_out", "dead_letters")} \
        == {k: v for k, v in whole.items() if k in ("records", "documents_in", "documents_out", "dead_letters")}


def _members(data: bytes) -> list[bytes]:
    import zlib
    out, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        out.append(data[pos:end])
        pos = end
    return out


def test_rerun_is_byte_identical_on_two_workers(tmp_path):
    sample_wet(str(tmp_path / "a.warc.wet.gz"), seed=5)
    sample_wet(str(tmp_path / "b.warc.wet.gz"), seed=6)
    outs = []
    for i, args in enumerate([LOCAL, ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]]):
        out = tmp_path / f"out{i}"
        run(CCConfig(input=str(tmp_path / "*.warc.wet.gz"), output=str(out)), args)
        outs.append(out)
    for sub in ("docs", "rejects", "dead_letters"):
        a, b = outs[0] / sub, outs[1] / sub
        names = sorted(os.listdir(a))
        assert names == sorted(os.listdir(b))
        match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
        assert not mismatch and not errors
    assert len(os.listdir(outs[0] / "docs")) == 2


def test_warc_html_is_reextracted_and_curated_like_wet(tmp_path):
    from smallgiant.samples.crawl import make_pages, warc_bytes
    pages = make_pages(0)
    write(str(tmp_path / "a.warc.gz"), warc_bytes(pages))
    stats = run(CCConfig(input=str(tmp_path / "a.warc.gz"), output=str(tmp_path / "out")), LOCAL)
    docs = read_rows(str(tmp_path / "out" / "docs"))
    assert {d["id"] for d in docs} == {p.id for p in pages if p.lang == "en" and p.kind == "clean"}
    by_id = {p.id: p for p in pages}
    for d in docs:
        assert json.loads(d["metadata"])["extracted_from"] == "html"
        body = [ln for ln in by_id[d["id"]].text.split("\n")[1:] if ln not in by_id[d["id"]].boilerplate]
        assert set(body) <= set(d["text"].split("\n")) and "tracking" not in d["text"]
    assert stats["dead_letters"] == 0


def test_a_page_with_many_near_copies_keeps_one(tmp_path):
    """Paragraphs shared by three or more near-copies are long lines, never template lines, so the copies
    still match each other and one of them survives line dedup."""
    import random
    from smallgiant.samples.crawl import SamplePage, sentence, wet_bytes
    rng, used = random.Random(4), set()
    shared = [" ".join(sentence(rng, "en", used) for _ in range(4)) for _ in range(12)]
    pages = []
    for n in range(4):
        own = " ".join(sentence(rng, "en", used) for _ in range(4))
        pages.append(SamplePage(record_id(500 + n), f"https://site{n}.example/p", "en", "\n".join(shared + [own])))
    write(str(tmp_path / "a.warc.wet.gz"), wet_bytes(pages))
    run(CCConfig(input=str(tmp_path / "a.warc.wet.gz"), output=str(tmp_path / "out")), LOCAL)
    kept = read_rows(str(tmp_path / "out" / "docs"), ["id"])
    assert [r["id"] for r in kept] == [record_id(500)]
