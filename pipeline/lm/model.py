"""Document perplexity as CCNet defines it, with one language's SentencePiece and KenLM models.

Each line is normalised (CCNet's LM normalisation: lower case, accents removed, digits to 0, Unicode
punctuation to ASCII, non-printing characters removed), cut into SentencePiece pieces, and scored by
KenLM with sentence boundaries. Perplexity = 10 ** (-sum of log10 probabilities / (pieces + lines)).
"""
from __future__ import annotations

import json
import os
import unicodedata

from pipeline.extras import install_line, optional_module
from pipeline.inputs import join

_PUNCT = {"，": ",", "。": ". ", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"',
          "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!",
          "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...",
          "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]", "％": "%", "►": "-"}


def _table() -> dict[int, str | None]:
    table: dict[int, str | None] = {ord(k): v for k, v in _PUNCT.items()}
    for cp in list(range(32)) + list(range(127, 160)):
        table[cp] = None
    return table


_TABLE = _table()
MODELS_JOB = "pipeline lm"      # train and cutoffs share the models directory
CUTOFFS = "cutoffs.json"
PERPLEXITY_EXTRA = install_line("perplexity")


def import_kenlm():
    """KenLM's Python module (it builds from source, with cmake and a C++ compiler)."""
    return optional_module("kenlm", "perplexity", "perplexity scoring (KenLM)")


def normalize_for_lm(line: str) -> str:
    line = unicodedata.normalize("NFD", line.strip().lower())
    line = "".join("0" if ch.isdigit() else ch for ch in line if unicodedata.category(ch) != "Mn")
    return " ".join(line.translate(_TABLE).split())


def model_paths(models_dir: str, lang: str) -> tuple[str, str]:
    return join(models_dir, f"{lang}.sp.model"), join(models_dir, f"{lang}.arpa.bin")


def languages_in(models_dir: str) -> list[str]:
    """Languages with both models in a directory on any Beam filesystem."""
    from apache_beam.io.filesystems import FileSystems
    found = {os.path.basename(m.path) for r in FileSystems.match([join(models_dir, "*")]) for m in r.metadata_list}
    return sorted(f[: -len(".arpa.bin")] for f in found
                  if f.endswith(".arpa.bin") and f[: -len(".arpa.bin")] + ".sp.model" in found)


def read_cutoffs(models_dir: str) -> dict[str, dict[str, float]]:
    from apache_beam.io.filesystems import FileSystems
    path = join(models_dir, CUTOFFS)
    if not FileSystems.exists(path):
        return {}
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return json.load(f)


class PerplexityModel:
    def __init__(self, sp_path: str, lm_path: str):
        import sentencepiece
        kenlm = import_kenlm()
        self.sp = sentencepiece.SentencePieceProcessor(model_file=sp_path)
        self.lm = kenlm.Model(lm_path)

    def pieces(self, line: str) -> str:
        return " ".join(self.sp.encode(normalize_for_lm(line), out_type=str))

    def log_score(self, text: str) -> tuple[float, int]:
        """(sum of log10 probabilities, pieces + lines) over the non-empty lines of a text."""
        total, length = 0.0, 0
        for line in text.split("\n"):
            tokens = self.pieces(line)
            if not tokens:
                continue
            total += self.lm.score(tokens, bos=True, eos=True)
            length += len(tokens.split()) + 1
        return total, length

    def perplexity(self, text: str) -> float:
        total, length = self.log_score(text)
        return round(10.0 ** (-total / length), 3) if length else float("inf")


def bucket(perplexity: float, cutoffs: dict[str, float] | None) -> str:
    """head below the first cutoff, middle below the second, tail above; "all" without cutoffs."""
    if not cutoffs:
        return "all"
    if perplexity < cutoffs["head"]:
        return "head"
    return "middle" if perplexity < cutoffs["middle"] else "tail"
