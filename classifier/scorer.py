"""The reference classifier as a quality scorer for the CC job's quality slot, and for `classifier score`.
The model directory may be on any Beam filesystem: its threshold is read on the driver from meta.json,
and model.bin is loaded once per worker."""
from __future__ import annotations

import json

from pipeline.inputs import join, open_stream
from pipeline.model_files import ModelFile
from pipeline.quality import QualityScorer
from pipeline.schema import Document


class ReferenceScorer(QualityScorer):
    name = "reference"

    def __init__(self, model_dir: str, threshold: float | None = None):
        try:
            with open_stream(join(model_dir, "meta.json")) as f:
                meta = json.load(f)
        except OSError as exc:
            raise FileNotFoundError(f"{model_dir} is not a trained classifier (no readable meta.json): "
                                    f"run `smallgiant classifier train` first") from exc
        self.threshold = float(meta["threshold"] if threshold is None else threshold)
        self.model_file = ModelFile(join(model_dir, "model.bin"))
        self._model = None

    def load(self) -> None:
        from classifier.model import ReferenceModel
        self._model = ReferenceModel.load(self.model_file.local_path())

    def score(self, doc: Document) -> dict:
        return {"reference_score": float(self._model.score(doc.text))}

    def reject_reason(self, doc: Document, scores: dict) -> str | None:
        p = scores["reference_score"]
        return None if p >= self.threshold else f"reference score {p:.4f} < {self.threshold:.4f}"
