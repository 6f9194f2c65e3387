"""The n-gram perplexity filter: real SentencePiece + KenLM (lmplz) models trained on text the test
writes, then used by the CC job."""
import json
import os
import random

import pytest

from helpers import LOCAL, read_rows, sample_wet
from pipeline.lm.cutoffs import compute_cutoffs
from pipeline.lm.model import PerplexityModel, bucket, model_paths, normalize_for_lm
from pipeline.lm.scorer import PerplexityScorer
from pipeline.lm.train import train_language_model
from smallgiant.samples.crawl import paragraph

BOILERPLATE = ("Home | About | Contact | Archive\nWe use cookies to improve your experience. Accept all\n"
               "Share this page: Facebook Twitter Email\nSubscribe to our newsletter\nCopyright 2021. All rights reserved.")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An English "Wikipedia" of generated encyclopedic paragraphs, and a model trained on it."""
    d = tmp_path_factory.mktemp("lm")
    rng, used = random.Random(0), set()
    (d / "wiki.jsonl").write_text("".join(json.dumps({"text": paragraph(rng, "en", used)}) + "\n"
                                          for _ in range(2000)))
    meta = train_language_model(str(d / "wiki.jsonl"), "en", str(d / "models"), vocab_size=2000)
    held_out = [paragraph(rng, "en", used) for _ in range(20)]
    return d / "models", meta, held_out, rng


def test_normalisation_matches_ccnet():
    assert normalize_for_lm("  Ça coûte 12,50 € — «vraiment»  ") == 'ca coute 00,00 € - "vraiment"'


def test_wikipedia_like_text_is_far_more_probable_than_shuffled_words_or_boilerplate(models):
    d, meta, held_out, rng = models
    assert meta["order"] == 5 and meta["lines"] == 2000 and os.path.isfile(d / "en.meta.json")
    model = PerplexityModel(*model_paths(str(d), "en"))
    good = [model.perplexity(t) for t in held_out]
    shuffled = []
    for t in held_out:
        words = t.split()
        rng.shuffle(words)
        shuffled.append(model.perplexity(" ".join(words)))
    boiler = model.perplexity(BOILERPLATE)
    assert max(good) * 5 < min(shuffled)
    assert max(good) * 20 < boiler


def test_buckets_follow_the_cutoffs():
    cut = {"head": 100.0, "middle": 300.0}
    assert [bucket(p, cut) for p in (10, 99.9, 100, 299, 300, 5000)] == ["head", "head", "middle", "middle",
                                                                          "tail", "tail"]
    assert bucket(50, None) == "all"


def test_cutoffs_and_the_cc_job(models, tmp_path):
    d, _, _, _ = models
    pages = sample_wet(str(tmp_path / "a.warc.wet.gz"))
    from pipeline.cc.config import CCConfig
    from pipeline.cc.job import run
    first = str(tmp_path / "first")
    run(CCConfig(input=str(tmp_path / "a.warc.wet.gz"), output=first, languages=("en", "de")), LOCAL)
    cutoffs = compute_cutoffs(os.path.join(first, "docs", "*.parquet"), str(d), (30, 60))
    assert set(cutoffs) == {"en"} and cutoffs["en"]["head"] <= cutoffs["en"]["middle"]

    out = str(tmp_path / "second")
    run(CCConfig(input=str(tmp_path / "a.warc.wet.gz"), output=out, languages=("en", "de"),
                 scorers=[PerplexityScorer(str(d), ("head", "middle"))]), LOCAL)
    docs = read_rows(os.path.join(out, "docs"))
    rejects = [r for r in read_rows(os.path.join(out, "rejects")) if r["stage"] == "quality.perplexity"]
    metas = [json.loads(r["metadata"]) for r in docs]
    assert {m["perplexity_bucket"] for m in metas if m["language"] == "en"} <= {"head", "middle"}
    assert all(m["perplexity_bucket"] == "all" and "perplexity" not in m for m in metas if m["language"] == "de")
    assert sum(m["language"] == "de" for m in metas) == sum(p.lang == "de" and p.kind == "clean" for p in pages)
    assert rejects
    for r in rejects:
        m = json.loads(r["metadata"])
        assert m["perplexity_bucket"] == "tail" and m["perplexity"] >= cutoffs["en"]["middle"]
        assert str(m["perplexity"]) in r["reason"]
    n_en = sum(m["language"] == "en" for m in metas) + len(rejects)
    assert 0.3 <= len(rejects) / n_en <= 0.5   # the tail is 40% of the sample the cutoffs came from


def test_bad_buckets_missing_models_and_missing_cutoffs_are_clear_errors(models, tmp_path):
    with pytest.raises(FileNotFoundError, match="no language model"):
        PerplexityScorer(str(tmp_path))
    with pytest.raises(ValueError, match="keep-buckets"):
        PerplexityScorer(str(tmp_path), ("top",))
    d = models[0]
    for name in ("en.sp.model", "en.arpa.bin"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    with pytest.raises(ValueError, match="no perplexity cutoffs for en"):
        PerplexityScorer(str(tmp_path))


def test_training_is_deterministic_and_forgets_stale_cutoffs(tmp_path):
    rng, used = random.Random(1), set()
    (tmp_path / "wiki.txt").write_text("\n".join(paragraph(rng, "en", used) for _ in range(300)))
    outs = []
    for run in ("a", "b"):
        d = tmp_path / run
        d.mkdir()
        (d / "cutoffs.json").write_text('{"en": {"head": 1, "middle": 2}, "de": {"head": 3, "middle": 4}}')
        # cutoffs.json written by hand: a file no smallgiant job wrote, adopted with overwrite
        train_language_model(str(tmp_path / "wiki.txt"), "en", str(d), vocab_size=300, overwrite=True)
        outs.append(d)
        assert json.loads((d / "cutoffs.json").read_text()) == {"de": {"head": 3, "middle": 4}}
    for name in ("en.sp.model", "en.arpa.bin", "en.meta.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
