"""Train, evaluate and apply the fastText "used as a reference by Wikipedia" classifier.

Input is a dataset directory with fastText-format `train.txt`, `valid.txt` and `test.txt` (one document a
line, `__label__ref` or `__label__random` first) and `counts.json`. `train` fits one model (or one per
candidate of a small grid and keeps the best validation ROC-AUC, ties going to the lower validation
log-loss), picks the score threshold on the
validation split, measures it on the test split, and writes `model.bin`, `report.json`, `meta.json` and
`threshold.png`. `ReferenceModel` scores text with a saved model: the probability of `__label__ref`.

Threshold rule: of the thresholds (candidates: every distinct validation score, plus 0.5) whose
validation precision is at least the target (0.9 by default), those with the highest recall, and of
these the ones with the best precision; the threshold is the middle of that range. If no threshold
reaches the target, the threshold with the best validation F1. A document is kept when its score is >= the
threshold.

Metrics are NumPy only. When a threshold keeps nothing, precision is reported as 0.0.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import math
import os
import platform
import uuid
from dataclasses import asdict, dataclass

import fasttext
import numpy as np

from pipeline.runtime.guard import write_atomically

log = logging.getLogger(__name__)

POSITIVE_LABEL = "__label__ref"
SPLITS = ("train", "valid", "test")
CURVE_THRESHOLDS = [round(0.05 * i, 2) for i in range(21)]


@dataclass
class TrainParams:
    word_ngrams: int = 2
    dim: int = 64
    epoch: int = 10
    lr: float = 0.1
    min_count: int = 2
    threads: int = 1
    seed: int = 0
    # The saved model holds bucket x dim floats: 200k x 64 is about 49 MiB (fastText's default of 2M
    # buckets would make it 490 MiB for no gain on a two-class problem of this size).
    bucket: int = 200_000


DEFAULT_GRID = [dataclasses.replace(TrainParams(), word_ngrams=n, epoch=e, lr=lr)
                for n in (2, 3) for e in (5, 15) for lr in (0.1, 0.5)]


# ---- data -------------------------------------------------------------------------------------------

def load_split(path: str) -> tuple[list[str], np.ndarray]:
    """Texts and labels (1 for `__label__ref`, 0 for any other label) of a fastText-format file."""
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            label, _, text = line.partition(" ")
            if not label.startswith("__label__"):
                raise ValueError(f"{path}:{n}: line does not start with a __label__ token")
            texts.append(text)
            labels.append(1 if label == POSITIVE_LABEL else 0)
    return texts, np.asarray(labels, dtype=np.int64)


def _load_checked_split(data_dir: str, split: str) -> tuple[list[str], np.ndarray]:
    path = os.path.join(data_dir, f"{split}.txt")
    if not os.path.isfile(path):
        raise ValueError(f"split file {path} is missing")
    texts, labels = load_split(path)
    n_ref = int(labels.sum())
    if n_ref == 0 or n_ref == len(labels):
        raise ValueError(f"split file {path} needs examples of both classes, "
                         f"has {n_ref} ref and {len(labels) - n_ref} random")
    return texts, labels


def _split_size(labels: np.ndarray) -> dict:
    n_ref = int(labels.sum())
    return {"total": int(len(labels)), "ref": n_ref, "random": int(len(labels)) - n_ref}


# ---- scoring ----------------------------------------------------------------------------------------

class ReferenceModel:
    """A loaded fastText model that scores text with the probability of `__label__ref`."""

    def __init__(self, model):
        self._model = model

    @classmethod
    def load(cls, path: str) -> "ReferenceModel":
        return cls(fasttext.load_model(path))

    def score(self, text: str) -> float:
        line = " ".join(text.split())
        # The raw binding (the wrapper's predict breaks under NumPy 2). The trailing newline adds the
        # end-of-sentence token that every training line had, as fastText's own wrapper does.
        for prob, label in self._model.f.predict(line + "\n", 2, 0.0, "replace"):
            if label == POSITIVE_LABEL:
                return min(1.0, float(prob))  # fastText's probabilities can exceed 1 by ~1e-5
        return 0.0

    def score_many(self, texts) -> np.ndarray:
        return np.asarray([self.score(t) for t in texts], dtype=np.float64)

    def save(self, path: str) -> None:
        self._model.save_model(path)


# ---- metrics ----------------------------------------------------------------------------------------

def roc_auc(labels, scores) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U), tied scores sharing their average rank."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    n_pos = int((labels == 1).sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both positive and negative labels")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    average_rank = last_rank - (counts - 1) / 2.0
    rank_sum = average_rank[inverse][labels == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _kept_and_true_positives(labels, scores, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """For each threshold t: how many documents have score >= t, and how many of those are positive."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    positives_below = np.concatenate([[0], np.cumsum(labels[order] == 1)])
    below = np.searchsorted(sorted_scores, np.asarray(thresholds, dtype=np.float64), side="left")
    return len(scores) - below, positives_below[-1] - positives_below[below]


def _precision_recall_f1(kept, tp, n_pos) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kept, tp = np.asarray(kept, dtype=np.float64), np.asarray(tp, dtype=np.float64)
    precision = np.divide(tp, kept, out=np.zeros_like(tp), where=kept > 0)
    recall = tp / n_pos if n_pos else np.zeros_like(tp)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return precision, recall, f1


def precision_recall_f1(labels, scores, threshold: float) -> dict:
    """Precision, recall and F1 of keeping documents with score >= threshold (positive = label 1)."""
    labels = np.asarray(labels)
    kept, tp = _kept_and_true_positives(labels, scores, [threshold])
    precision, recall, f1 = _precision_recall_f1(kept, tp, int((labels == 1).sum()))
    return {"threshold": float(threshold), "precision": float(precision[0]), "recall": float(recall[0]),
            "f1": float(f1[0]), "kept": int(kept[0])}


def keep_rate_curve(scores, thresholds, labels=None) -> list[dict]:
    """Share of documents with score >= t for each threshold t; with labels, precision and recall too."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.zeros(len(scores), dtype=np.int64) if labels is None else np.asarray(labels)
    kept, tp = _kept_and_true_positives(y, scores, thresholds)
    keep_rate = kept / len(scores) if len(scores) else np.zeros(len(kept))
    rows = [{"threshold": float(t), "keep_rate": float(r), "kept": int(k)}
            for t, r, k in zip(thresholds, keep_rate, kept)]
    if labels is not None:
        precision, recall, _ = _precision_recall_f1(kept, tp, int((y == 1).sum()))
        for row, p, r in zip(rows, precision, recall):
            row.update(precision=float(p), recall=float(r))
    return rows


def log_loss(labels, scores) -> float:
    """Mean negative log-likelihood of the labels under the scores (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-6, 1 - 1e-6)
    y = np.asarray(labels)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def choose_threshold(labels, scores, target_precision: float = 0.9) -> tuple[float, str]:
    """The threshold rule of the module docstring; returns the threshold and a sentence stating the rule."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    candidates = np.unique(np.append(scores, 0.5))
    kept, tp = _kept_and_true_positives(labels, scores, candidates)
    precision, recall, f1 = _precision_recall_f1(kept, tp, int((labels == 1).sum()))
    reaching = np.flatnonzero(precision >= target_precision)
    if len(reaching):
        # recall only falls as the threshold rises, so the lowest reaching threshold has the most; of
        # the thresholds with that recall, those with the best precision form a range, and its middle
        # leaves the most room on both sides
        best = reaching[recall[reaching] >= recall[reaching[0]]]
        best = best[precision[best] >= precision[best].max()]
        lo, hi = float(candidates[best[0]]), float(candidates[best[-1]])
        threshold = (lo + hi) / 2
        i = int(best[0])
        return threshold, (
            f"The threshold {threshold:.4f} is the middle of the range of thresholds ({lo:.4f}-{hi:.4f}) that "
            f"give the highest validation recall at which precision reaches the target of "
            f"{target_precision:.2f}, and the best precision at that recall (precision {precision[i]:.3f}, "
            f"recall {recall[i]:.3f}).")
    i = int(np.argmax(f1))
    return float(candidates[i]), (
        f"No threshold reaches the target validation precision of {target_precision:.2f} "
        f"(best {precision.max():.3f}), so the threshold {candidates[i]:.4f} with the best validation F1 "
        f"({f1[i]:.3f}; precision {precision[i]:.3f}, recall {recall[i]:.3f}) was used.")


# ---- training ---------------------------------------------------------------------------------------

def _check_params(params: TrainParams) -> None:
    # This fastText build leaves part of the input matrix uninitialised (upstream 0.9.2 fills only the
    # first tenth with one thread): word_ngrams=1 turns the hash buckets off, the matrix is then a small
    # heap block holding garbage, and training gives NaN or nondeterministic models. A matrix of 32 MiB or
    # more is a fresh mmap from glibc, which is zero-filled, as upstream intends.
    if params.word_ngrams < 2:
        raise ValueError("word_ngrams must be >= 2: with 1 this fastText build trains from "
                         "uninitialised memory (NaN or nondeterministic models)")
    if params.bucket * params.dim < 2 ** 23:
        raise ValueError(f"bucket x dim must be >= 2**23 (got {params.bucket} x {params.dim}) so that "
                         "fastText's input matrix is allocated zero-filled")
    counts = {"dim": params.dim, "epoch": params.epoch, "min_count": params.min_count, "threads": params.threads}
    problems = [f"{name} {value} (must be >= 1)" for name, value in counts.items() if value < 1]
    if not (math.isfinite(params.lr) and params.lr > 0):
        problems.append(f"lr {params.lr} (must be > 0 and finite)")
    if params.seed < 0:
        problems.append(f"seed {params.seed} (must be >= 0)")
    if problems:
        raise ValueError("fastText parameters out of range: " + ", ".join(problems))


def _fit(train_path: str, params: TrainParams):
    _check_params(params)
    return fasttext.train_supervised(
        input=train_path, wordNgrams=params.word_ngrams, dim=params.dim, epoch=params.epoch, lr=params.lr,
        minCount=params.min_count, thread=params.threads, seed=params.seed, bucket=params.bucket,
        loss="softmax", verbose=0)


def _select_model(train_path: str, valid: tuple[list[str], np.ndarray], candidates: list[TrainParams]):
    """Fit every candidate; return the one with the best validation ROC-AUC (ties: the lower validation
    log-loss, i.e. the better calibrated probabilities; then the earliest), its params and one record per
    candidate."""
    best, best_params, best_key, records = None, None, None, []
    for params in candidates:
        try:
            model = ReferenceModel(_fit(train_path, params))
        except RuntimeError as e:  # fastText diverged ("Encountered NaN.")
            records.append({"params": asdict(params), "valid_roc_auc": None, "error": str(e)})
            continue
        scores = model.score_many(valid[0])
        auc, loss = roc_auc(valid[1], scores), log_loss(valid[1], scores)
        records.append({"params": asdict(params), "valid_roc_auc": auc, "valid_log_loss": loss})
        if best_key is None or (auc, -loss) > best_key:
            best, best_params, best_key = model, params, (auc, -loss)
    if best is None:
        raise RuntimeError(f"every training candidate failed: {records}")
    return best, best_params, records


def _atomic_write(path: str, write) -> None:
    """Call write(temporary path) in path's directory, then rename the result onto path."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_json(path: str, obj) -> None:
    write_atomically(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _plot_threshold(path: str, curve: list[dict], threshold: float) -> None:
    """threshold.png, when matplotlib (the `report` extra) is installed; the curve is in report.json anyway."""
    try:
        from smallgiant.report.plots import pyplot
        plt = pyplot()
    except FileNotFoundError as exc:
        log.warning("no threshold.png: %s", exc)
        return

    t = [row["threshold"] for row in curve]
    # precision is undefined where nothing is kept: leave a gap rather than draw the 0.0 convention
    precision = [row["precision"] if row["kept"] else float("nan") for row in curve]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(t, [row["keep_rate"] for row in curve], marker=".", label="keep rate")
    ax.plot(t, precision, marker=".", label="precision (ref)")
    ax.plot(t, [row["recall"] for row in curve], marker=".", label="recall (ref)")
    ax.axvline(threshold, color="black", linestyle="--", label=f"chosen threshold {threshold:.3f}")
    ax.set(title="Wikipedia-reference classifier on the test split", xlabel="threshold on P(ref)",
           ylabel="rate", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="best")
    try:
        _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def _fasttext_version() -> str:
    for dist in ("fasttext-numpy2-wheel", "fasttext"):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            pass
    return "unknown"


def _library_versions() -> dict:
    return {"fasttext": _fasttext_version(), "numpy": np.__version__, "python": platform.python_version()}


def _read_counts(data_dir: str) -> dict:
    path = os.path.join(data_dir, "counts.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


MODEL_FILES = ["model.bin", "threshold.png", "report.json", "meta.json"]


def train(data_dir: str, output_dir: str, params: TrainParams | None = None, target_precision: float = 0.9,
          grid=DEFAULT_GRID, overwrite: bool = False, max_lease_age: float | None = None) -> dict:
    """Train on DIR/train.txt (one model per grid candidate when params is None), choose the threshold on
    valid.txt, evaluate on test.txt and write model.bin, report.json, meta.json and threshold.png (staged,
    then moved into `output_dir` together: `pipeline.runtime.guard`)."""
    from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output
    with claim_output(output_dir, "classifier train", MODEL_FILES, [data_dir], overwrite,
                      max_lease_age or DEFAULT_MAX_LEASE_AGE_HOURS) as out:
        report = _train(data_dir, out.stage(), params, target_precision, grid)
        out.publish(MODEL_FILES)
    return report


def _train(data_dir: str, output_dir: str, params: TrainParams | None, target_precision: float, grid) -> dict:
    candidates = list(grid) if params is None else [params]
    if not candidates:
        raise ValueError("the grid of training candidates is empty")
    for candidate in candidates:
        _check_params(candidate)
    if not 0 < target_precision <= 1:
        raise ValueError(f"the target precision must be in (0, 1], not {target_precision}")
    splits = {s: _load_checked_split(data_dir, s) for s in SPLITS}
    model, chosen, records = _select_model(os.path.join(data_dir, "train.txt"), splits["valid"], candidates)

    valid_scores = model.score_many(splits["valid"][0])
    threshold, rule = choose_threshold(splits["valid"][1], valid_scores, target_precision)
    test_texts, test_labels = splits["test"]
    test_scores = model.score_many(test_texts)
    curve = keep_rate_curve(test_scores, CURVE_THRESHOLDS, labels=test_labels)

    report = {
        "selection": "grid search on validation ROC-AUC" if params is None else "fixed params",
        "candidates": records,
        "params": asdict(chosen),
        "target_precision": target_precision,
        "threshold": threshold,
        "threshold_rule": rule,
        "valid": {**precision_recall_f1(splits["valid"][1], valid_scores, threshold),
                  "roc_auc": roc_auc(splits["valid"][1], valid_scores)},
        "test": {**precision_recall_f1(test_labels, test_scores, threshold),
                 "roc_auc": roc_auc(test_labels, test_scores),
                 "keep_rate": float((test_scores >= threshold).mean())},
        "keep_rate_curve": curve,
        "split_sizes": {s: _split_size(labels) for s, (_, labels) in splits.items()},
    }
    meta = {
        "threshold": threshold,
        "threshold_rule": rule,
        "target_precision": target_precision,
        "positive_label": POSITIVE_LABEL,
        "params": asdict(chosen),
        "data_counts": _read_counts(data_dir),
        "versions": _library_versions(),
    }
    os.makedirs(output_dir, exist_ok=True)
    _atomic_write(os.path.join(output_dir, "model.bin"), model.save)
    _plot_threshold(os.path.join(output_dir, "threshold.png"), curve, threshold)
    _write_json(os.path.join(output_dir, "report.json"), report)
    _write_json(os.path.join(output_dir, "meta.json"), meta)
    return report


def load_meta(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "meta.json"), encoding="utf-8") as f:
        return json.load(f)
