"""The reference classifier: NumPy metrics, the threshold rule, and training on a separable toy data set."""
from __future__ import annotations

import json
import os
import random
from dataclasses import asdict

import numpy as np
import pytest

from classifier.model import (DEFAULT_GRID, ReferenceModel, TrainParams, choose_threshold, keep_rate_curve,
                              load_meta, load_split, precision_recall_f1, roc_auc, train)

REF_WORDS = ("university journal published research report museum archive census history library "
             "volume edition survey records council 1850 1901 1923 1987").split()
RANDOM_WORDS = ("buy cheap deal lol click casino offer free shipping subscribe win now code cart "
                "discount bonus omg sale hurry promo").split()
# one bucket row per hashed bigram: small enough to save quickly, big enough for _check_params
FAST = TrainParams(epoch=5, bucket=200_000)


def _line(rng: random.Random, words: list[str]) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(6, 16)))


def write_toy_dataset(directory, n_per_class=(150, 60, 60), seed=0) -> str:
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    for split, n in zip(("train", "valid", "test"), n_per_class):
        lines = [f"__label__ref {_line(rng, REF_WORDS)}" for _ in range(n)]
        lines += [f"__label__random {_line(rng, RANDOM_WORDS)}" for _ in range(n)]
        rng.shuffle(lines)
        with open(os.path.join(directory, f"{split}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    with open(os.path.join(directory, "counts.json"), "w") as f:
        json.dump({"ref_pages": sum(n_per_class), "random_pages": sum(n_per_class)}, f)
    return str(directory)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"))


# ---- metrics ----------------------------------------------------------------------------------------

def test_roc_auc_hand_checked():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # pairs (pos, neg): (0.8,0.1) win, (0.8,0.8) tie, (0.4,0.1) win, (0.4,0.8) loss -> 2.5 / 4
    assert roc_auc([1, 0, 1, 0], [0.8, 0.1, 0.4, 0.8]) == pytest.approx(0.625)


def test_roc_auc_matches_pairwise_count():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 2, 60)
        labels[:2] = [0, 1]
        scores = rng.integers(0, 10, 60) / 10  # coarse, so that there are many ties
        pos, neg = scores[labels == 1], scores[labels == 0]
        diff = pos[:, None] - neg[None, :]
        brute = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
        assert roc_auc(labels, scores) == pytest.approx(brute)


def test_roc_auc_needs_both_classes():
    with pytest.raises(ValueError):
        roc_auc([1, 1], [0.2, 0.3])


def test_precision_recall_f1_and_keep_rate_curve():
    labels = [1, 1, 0, 1, 0]
    scores = [0.9, 0.7, 0.6, 0.4, 0.1]
    m = precision_recall_f1(labels, scores, 0.5)
    assert (m["precision"], m["recall"], m["kept"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert precision_recall_f1(labels, scores, 0.95)["precision"] == 0.0  # nothing kept

    curve = keep_rate_curve(scores, [0.0, 0.5, 1.0], labels=labels)
    assert [row["keep_rate"] for row in curve] == [1.0, 0.6, 0.0]
    assert curve[0]["precision"] == pytest.approx(0.6) and curve[0]["recall"] == 1.0
    assert "precision" not in keep_rate_curve(scores, [0.5])[0]


def test_choose_threshold_reaches_target_precision():
    labels = np.array([1, 1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0])
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.3, 0.1])
    threshold, rule = choose_threshold(labels, scores, target_precision=0.8)
    assert precision_recall_f1(labels, scores, threshold)["precision"] >= 0.8
    assert threshold == 0.7  # the lowest: 5 of 6 kept are ref; at 0.55, 6 of 9
    assert "precision" in rule


def test_choose_threshold_falls_back_to_best_f1():
    labels = np.array([0, 1, 0, 1, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    threshold, rule = choose_threshold(labels, scores, target_precision=0.9)
    assert threshold == 0.4  # keeping everything: precision 0.5, recall 1, F1 2/3 is the best
    assert "best validation F1" in rule and "precision" in rule


# ---- training ---------------------------------------------------------------------------------------

def test_load_split(toy_data):
    texts, labels = load_split(os.path.join(toy_data, "valid.txt"))
    assert len(texts) == len(labels) == 120 and labels.sum() == 60
    assert not any(t.startswith("__label__") for t in texts)


def test_train_separable_toy_set(toy_data, tmp_path):
    out = tmp_path / "model"
    report = train(toy_data, str(out), params=FAST)
    assert report["test"]["roc_auc"] > 0.98
    for name in ("model.bin", "report.json", "meta.json", "threshold.png"):
        assert (out / name).is_file()
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]

    saved = json.loads((out / "report.json").read_text())
    meta = load_meta(str(out))
    assert saved["threshold"] == meta["threshold"] == report["threshold"]
    assert saved["params"] == meta["params"] == asdict(FAST)
    assert meta["data_counts"] == {"ref_pages": 270, "random_pages": 270}
    assert set(meta["versions"]) == {"fasttext", "numpy", "python"}
    assert saved["split_sizes"]["test"] == {"total": 120, "ref": 60, "random": 60}
    assert [row["threshold"] for row in saved["keep_rate_curve"]][:3] == [0.0, 0.05, 0.1]

    model = ReferenceModel.load(str(out / "model.bin"))
    ref_like = "The university museum\npublished its  archive report in 1923."
    random_like = "lol buy cheap casino deal, click now for free shipping"
    assert model.score(ref_like) > model.score(random_like)
    assert model.score_many([ref_like, random_like]).shape == (2,)


def test_train_default_grid_reports_every_candidate(toy_data, tmp_path):
    report = train(toy_data, str(tmp_path / "grid"))
    aucs = [c["valid_roc_auc"] for c in report["candidates"]]
    assert [c["params"] for c in report["candidates"]] == [asdict(c) for c in DEFAULT_GRID]
    assert all(a is not None and 0.0 <= a <= 1.0 for a in aucs)
    keys = [(c["valid_roc_auc"], -c["valid_log_loss"]) for c in report["candidates"]]
    best = keys.index(max(keys))   # best AUC, ties to the lowest validation log-loss
    assert report["params"] == asdict(DEFAULT_GRID[best])
    os.remove(tmp_path / "grid" / "model.bin")  # pytest keeps tmp dirs


def test_training_is_deterministic(toy_data, tmp_path):
    texts, _ = load_split(os.path.join(toy_data, "test.txt"))
    scores = []
    for run in ("a", "b"):
        train(toy_data, str(tmp_path / run), params=FAST)
        scores.append(ReferenceModel.load(str(tmp_path / run / "model.bin")).score_many(texts))
    np.testing.assert_array_equal(scores[0], scores[1])


def test_train_rejects_bad_splits(tmp_path):
    data = write_toy_dataset(tmp_path / "data", n_per_class=(20, 10, 10))
    os.remove(os.path.join(data, "valid.txt"))
    with pytest.raises(ValueError, match="missing"):
        train(data, str(tmp_path / "out"), params=FAST)
    with open(os.path.join(data, "valid.txt"), "w") as f:
        f.write("__label__random buy now\n__label__random lol\n")
    with pytest.raises(ValueError, match="both classes"):
        train(data, str(tmp_path / "out"), params=FAST)


def test_word_unigrams_are_refused(toy_data, tmp_path):
    with pytest.raises(ValueError, match="word_ngrams"):
        train(toy_data, str(tmp_path / "out"), params=TrainParams(word_ngrams=1, bucket=200_000))
