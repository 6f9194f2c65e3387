"""The tokenizer's training sample: quotas in the mixture's shares, bytes in the mixture's shares, a
held-out set kept apart and stable, and draws that depend on ids and seed only."""
from __future__ import annotations

import random

import pytest

from pipeline.schema import Document
from tokenizer.manifest import SourceSpec, load_manifest
from tokenizer.sample import (BottomK, SampledDoc, draw_sample, is_held_out, mixture_texts, priority, quotas,
                              window)
from tokenizer_corpus import make_documents, write_parquet


def manifest_of(tmp_path, docs_by_source: dict[str, list[Document]], shares: dict[str, float], files: int = 2):
    lines = ["name: t", "sources:"]
    for name, docs in docs_by_source.items():
        for i in range(files):
            write_parquet(str(tmp_path / name / f"p{i}.parquet"), docs[i::files], row_group_size=16)
        lines.append(f"  {name}: {{share: {shares[name]}, epochs: 1, paths: [{name}/*.parquet]}}")
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    return load_manifest(str(tmp_path / "m.yaml"))


def ids(docs: list[SampledDoc]) -> list[str]:
    return [d.id for d in docs]


@pytest.fixture
def three_sources(tmp_path):
    docs = {"web": make_documents("web", 400, ["en", "de"]), "code": make_documents("code", 200, None),
            "books": [Document(f"book-{i}", "", "books", ("A line of a long book.\n" * 3000), {"language": "en"})
                      for i in range(30)]}
    return docs, manifest_of(tmp_path, docs, {"web": 0.7, "code": 0.2, "books": 0.1})


def test_quotas_follow_the_shares():
    specs = tuple(SourceSpec(n, s, 1.0, ("x",), None) for n, s in {"a": 0.67, "b": 0.3, "c": 0.03, "d": 0.0}.items())
    assert quotas(specs, 1000) == {"a": 670, "b": 300, "c": 30, "d": 0}
    assert quotas(specs, 10) == {"a": 7, "b": 3, "c": 1, "d": 0}  # a source with a share gets one at least


def test_draw_takes_each_source_quota_and_keeps_held_out_apart(three_sources):
    docs, manifest = three_sources
    samples = draw_sample(manifest, sample_docs=200, held_out_docs=10, held_out_share=0.1)
    assert [s.name for s in samples] == ["web", "code", "books"]
    assert [len(s.train) for s in samples] == [140, 40, 20]
    for s in samples:
        all_ids = [d.id for d in docs[s.name]]
        assert s.documents == len(all_ids) and s.files == 2
        assert not set(ids(s.train)) & set(ids(s.held_out))
        assert all(is_held_out(s.name, i, 0.1) for i in ids(s.held_out))
        assert not any(is_held_out(s.name, i, 0.1) for i in ids(s.train))
        assert s.held_out_documents == sum(is_held_out(s.name, i, 0.1) for i in all_ids)
        # the lowest priorities among the documents that are not held out, lowest first
        eligible = sorted((priority(0, s.name, i), i) for i in all_ids if not is_held_out(s.name, i, 0.1))
        assert ids(s.train) == [i for _, i in eligible[:len(s.train)]]
    web = samples[0]
    assert 20 <= web.held_out_documents <= 60 and len(web.held_out) == 10
    assert {d.language for d in web.train} == {"en", "de"}
    assert all(d.language is None for d in samples[1].train)


def test_draw_depends_on_ids_and_seed_only(tmp_path, three_sources):
    docs, manifest = three_sources
    shuffled = {k: random.Random(1).sample(v, len(v)) for k, v in docs.items()}
    other = manifest_of(tmp_path / "other", shuffled, {"web": 0.7, "code": 0.2, "books": 0.1}, files=3)
    a = draw_sample(manifest, 200, 10, 0.1)
    b = draw_sample(other, 200, 10, 0.1)
    c = draw_sample(manifest, 200, 10, 0.1, seed=5)
    for sa, sb, sc in zip(a, b, c):
        assert ids(sa.train) == ids(sb.train) and ids(sa.held_out) == ids(sb.held_out)
        assert ids(sa.held_out) == ids(sc.held_out)  # the held-out set does not move with the seed
    assert ids(a[0].train) != ids(c[0].train)


def test_long_documents_contribute_a_window(three_sources):
    _, manifest = three_sources
    books = draw_sample(manifest, 200, 10, 0.1, max_doc_chars=5000)[2]
    for doc in books.train:
        assert 0 < len(doc.text) <= 5000 and doc.text.endswith("\n")
        assert doc.text.startswith("A line") and "A line of a long book.\n" * 10 in doc.text


def test_mixture_texts_give_each_source_its_share_of_bytes(three_sources):
    _, manifest = three_sources
    samples = draw_sample(manifest, 200, 10, 0.1)
    texts = mixture_texts(samples)
    sizes = {k: sum(len(t.encode()) for t in v) for k, v in texts.items()}
    total = sum(sizes.values())
    for s in samples:
        assert abs(sizes[s.name] / total - s.share) < 0.005, sizes
        assert texts[s.name] and s.train[0].text.startswith(texts[s.name][0])  # in priority order
    # the scarcest source relative to its share is used whole
    assert max(sizes[s.name] / sum(len(d.text.encode()) for d in s.train) for s in samples) > 0.99


def test_bottom_k_keeps_the_lowest_priorities():
    rng = random.Random(3)
    keep = BottomK(25)
    offered = [(rng.getrandbits(64), SampledDoc(str(i), "x", None)) for i in range(1000)]
    for prio, doc in offered:
        keep.offer(prio, doc)
    assert ids(keep.items()) == [d.id for _, d in sorted(offered, key=lambda t: t[0])[:25]]
    assert not BottomK(0).wants(0)


def test_window():
    text = "".join(f"line {i:04d}\n" for i in range(1000))  # 10 characters a line
    assert window(text, len(text), 7) == text
    for seed in (0, 1, 12345, 2 ** 63):
        piece = window(text, 95, seed)
        assert 0 < len(piece) <= 95 and piece in text
        assert piece.startswith("line ") and piece.endswith("\n")
    assert window("x" * 100, 10, 3) == "x" * 10  # one long line is cut


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one document"):
        draw_sample(None, 0, 10, 0.1)
    with pytest.raises(ValueError, match="held-out share"):
        draw_sample(None, 10, 10, 1.0)
