"""The classifier path on the embedded sample: dump -> urls -> join -> dataset -> train -> score."""
import bz2
import filecmp
import json
import os

import pyarrow.parquet as pq
import pytest

from classifier.dataset import DatasetConfig, run as build_dataset
from smallgiant.samples.wiki_citations import write_sample
from helpers import LOCAL, read_rows

SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("wiki")
    sample = write_sample(str(d / "in"))
    out = str(d / "data")
    counts = build_dataset(DatasetConfig(output=out, wikipedia=str(d / "in" / "*.xml"),
                                         crawl=str(d / "in" / "crawl.warc.wet.gz"), min_chars=200), LOCAL)
    return sample, out, counts, d


def _split_rows(out):
    return {s: pq.read_table(os.path.join(out, f"{s}.parquet")).to_pylist() for s in SPLITS}


def test_join_finds_exactly_the_cited_pages_in_the_crawl(built):
    sample, out, counts, _ = built
    rows = _split_rows(out)
    positives = {r["id"] for s in SPLITS for r in rows[s] if r["label"] == 1}
    negatives = {r["id"] for s in SPLITS for r in rows[s] if r["label"] == 0}
    assert positives == sample.cited
    assert not negatives & sample.cited
    cited_texts = {p.text for p in sample.crawl if p.id in sample.cited}
    assert not any(r["text"] in cited_texts for s in SPLITS for r in rows[s] if r["label"] == 0)  # no mirror
    assert counts["dump"]["references_found"] == len(sample.cited_urls)
    assert counts["join"]["cited_urls_in_crawl"] == len(sample.cited)
    assert counts["dump"]["pages_skipped"] == 3   # redirect, disambiguation, talk page
    assert counts["clean"]["duplicates_random"] == 5


def test_splits_are_disjoint_balanced_and_deterministic(built, tmp_path):
    sample, out, counts, d = built
    rows = _split_rows(out)
    ids = [{r["id"] for r in rows[s]} for s in SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for s in SPLITS:
        pos = sum(r["label"] for r in rows[s])
        assert pos > 0 and len(rows[s]) == 2 * pos
        assert counts["splits"][s] == {"positives": pos, "negatives": pos}
        with open(os.path.join(out, f"{s}.txt")) as f:
            lines = f.read().splitlines()
        assert len(lines) == len(rows[s]) and all(ln.startswith(("__label__ref ", "__label__random ")) for ln in lines)
    again = str(tmp_path / "again")
    build_dataset(DatasetConfig(output=again, wikipedia=str(d / "in" / "*.xml"),
                                crawl=str(d / "in" / "crawl.warc.wet.gz"), min_chars=200), LOCAL)
    names = [f"{s}.{e}" for s in SPLITS for e in ("txt", "parquet")]
    assert filecmp.cmpfiles(out, again, names, shallow=False)[0] == names


def test_truncated_dump_is_a_dead_letter_not_a_crash(built, tmp_path):
    sample, _, _, d = built
    with open(d / "in" / "enwiki-sample-pages-articles.xml", "rb") as f:
        xml = f.read()
    # a multistream dump, as Wikipedia publishes: a bz2 stream per group of pages, cut in the middle
    parts = xml.split(b"  <page>")
    streams = [bz2.compress(parts[0])] + [bz2.compress(b"".join(b"  <page>" + p for p in parts[i:i + 5]))
                                         for i in range(1, len(parts), 5)]
    packed = b"".join(streams)
    (tmp_path / "dump.xml.bz2").write_bytes(packed[: len(packed) // 2])
    counts = build_dataset(DatasetConfig(output=str(tmp_path / "data"), wikipedia=str(tmp_path / "dump.xml.bz2"),
                                         crawl=str(d / "in" / "crawl.warc.wet.gz"), min_chars=200), LOCAL)
    assert counts["dump"]["dead_letters"] == 1
    assert 0 < counts["dump"]["articles"] < 40
    dead = read_rows(str(tmp_path / "data" / "dead_letters"))
    assert len(dead) == 1 and "pages read" in dead[0]["reason"]


def test_ready_files_train_and_score(built, tmp_path):
    from classifier.model import TrainParams, train
    from classifier.score import run as score
    sample, out, _, d = built
    rows = _split_rows(out)
    pos = [{"text": r["text"], "url": r["url"]} for s in SPLITS for r in rows[s] if r["label"] == 1]
    neg = [{"text": p.text} for p in sample.crawl if p.id not in sample.cited][:300]
    (tmp_path / "pos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pos))
    (tmp_path / "neg.jsonl").write_text("".join(json.dumps(r) + "\n" for r in neg))
    ready = str(tmp_path / "ready")
    counts = build_dataset(DatasetConfig(output=ready, positives=str(tmp_path / "pos.jsonl"),
                                         negatives=str(tmp_path / "neg.jsonl"), min_chars=200), LOCAL)
    assert counts["join"]["ready_rows"] == len(pos) + len(neg)

    model = str(tmp_path / "model")
    report = train(out, model, TrainParams(epoch=15, lr=0.5))
    assert report["test"]["roc_auc"] > 0.98
    assert os.path.isfile(os.path.join(model, "threshold.png"))

    docs = tmp_path / "docs"
    docs.mkdir()
    import pyarrow as pa
    from pipeline.schema import DOC_SCHEMA, Document
    table = pa.Table.from_pylist([Document(p.id, p.url, "commoncrawl", p.text, {"x": 1}).to_row()
                                  for p in sample.crawl[:50]], schema=DOC_SCHEMA)
    pq.write_table(table, str(docs / "part-0.parquet"))
    summary = score(model, str(docs / "*.parquet"), str(tmp_path / "scored"), LOCAL)
    scored = read_rows(str(tmp_path / "scored" / "docs"))
    assert summary["documents_out"] == len(scored) == 50
    cited_texts = {p.text for p in sample.crawl if p.id in sample.cited}   # mirrors share a cited text
    for r in scored:
        meta = json.loads(r["metadata"])
        assert meta["x"] == 1 and 0.0 <= meta["reference_score"] <= 1.0
        assert (meta["reference_score"] >= summary["threshold"]) == (r["text"] in cited_texts)


def test_cc_job_with_the_quality_model(built, tmp_path):
    from classifier.model import TrainParams, train
    from classifier.scorer import ReferenceScorer
    from pipeline.cc.config import CCConfig
    from pipeline.cc.job import run
    sample, out, _, d = built
    model = str(tmp_path / "model")
    train(out, model, TrainParams(epoch=15, lr=0.5))
    stats = run(CCConfig(input=str(d / "in" / "crawl.warc.wet.gz"), output=str(tmp_path / "cc"),
                         scorers=[ReferenceScorer(model)]), LOCAL)
    kept = read_rows(str(tmp_path / "cc" / "docs"))
    rejected = [r for r in read_rows(str(tmp_path / "cc" / "rejects")) if r["stage"] == "quality.reference"]
    assert kept and rejected and stats["stages"][-1]["stage"] == "quality.reference"
    assert all(json.loads(r["metadata"])["reference_score"] >= ReferenceScorer(model).threshold for r in kept)
    assert all("reference score" in r["reason"] for r in rejected)
    assert len({r["id"] for r in kept} - sample.cited) <= 0.1 * len(kept)   # target precision 0.9
