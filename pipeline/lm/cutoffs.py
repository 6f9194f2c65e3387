"""`pipeline lm cutoffs`: per-language perplexity cutoffs (CCNet: the 30th and 60th percentiles) over a
sample of crawl documents, written to `cutoffs.json` next to the models.

Documents are Parquet files in the document schema with `language` in their metadata (the CC job's
output). Each language's sample is a uniform reservoir sample, seeded, of at most `sample_docs` documents.
"""
from __future__ import annotations

import json
import random

import numpy as np

from pipeline.doc_files import iter_rows, local_files
from pipeline.lm.model import CUTOFFS, MODELS_JOB, PerplexityModel, languages_in, model_paths
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output


def _reservoirs(pattern: str, langs: set[str], size: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    samples: dict[str, list[str]] = {lang: [] for lang in langs}
    for path in local_files(pattern):
        for row in iter_rows(path, ["text", "metadata"]):
            lang = json.loads(row["metadata"] or "{}").get("language")
            if lang not in langs:
                continue
            n = seen[lang] = seen.get(lang, 0) + 1
            if n <= size:
                samples[lang].append(row["text"])
            else:
                j = rng.randrange(n)
                if j < size:
                    samples[lang][j] = row["text"]
    return samples


def compute_cutoffs(pattern: str, models_dir: str, percentiles: tuple[float, float] = (30, 60),
                    sample_docs: int = 10_000, seed: int = 0, overwrite: bool = False,
                    max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    if not 0 < percentiles[0] < percentiles[1] < 100:
        raise ValueError("--percentiles takes two increasing numbers between 0 and 100, e.g. 30,60")
    claim = claim_output(models_dir, MODELS_JOB, [CUTOFFS], local_files(pattern), overwrite, max_lease_age)
    with claim as out:
        cutoffs = _cutoffs(pattern, models_dir, percentiles, sample_docs, seed)
        out.write(CUTOFFS, json.dumps(cutoffs, indent=2, sort_keys=True).encode())
    return cutoffs


def _cutoffs(pattern: str, models_dir: str, percentiles: tuple[float, float], sample_docs: int, seed: int) -> dict:
    langs = set(languages_in(models_dir))
    cutoffs = {}
    for lang, texts in sorted(_reservoirs(pattern, langs, sample_docs, seed).items()):
        if not texts:
            continue
        model = PerplexityModel(*model_paths(models_dir, lang))
        ppl = np.array([model.perplexity(t) for t in texts])
        ppl = ppl[np.isfinite(ppl)]  # a text without any scorable line has no perplexity
        if len(ppl) == 0:
            continue
        head, middle = np.percentile(ppl, percentiles)
        cutoffs[lang] = {"head": round(float(head), 3), "middle": round(float(middle), 3),
                         "percentiles": list(percentiles), "documents": len(ppl)}
    return cutoffs
