"""The perplexity filter in the CC job's quality slot: per-language perplexity and bucket in each
document's metadata; documents outside `keep_buckets` are rejected with their perplexity. Languages
without a model pass with bucket "all"."""
from __future__ import annotations

from pipeline.lm.model import bucket, import_kenlm, languages_in, model_paths, read_cutoffs
from pipeline.model_files import ModelFile
from pipeline.quality import QualityScorer
from pipeline.schema import Document

BUCKETS = ("head", "middle", "tail")


class PerplexityScorer(QualityScorer):
    name = "perplexity"

    def __init__(self, models_dir: str, keep_buckets: tuple[str, ...] = ("head", "middle")):
        unknown = set(keep_buckets) - set(BUCKETS)
        if unknown or not keep_buckets:
            raise ValueError(f"--keep-buckets takes a comma-separated subset of {','.join(BUCKETS)}")
        self.keep = frozenset(keep_buckets)
        import_kenlm()  # the models load on the workers: a missing module is refused before the job starts
        self.cutoffs = read_cutoffs(models_dir)
        self.files = {lang: tuple(ModelFile(p) for p in model_paths(models_dir, lang))
                      for lang in languages_in(models_dir)}
        if not self.files:
            raise FileNotFoundError(f"no language model (<lang>.sp.model + <lang>.arpa.bin) in {models_dir}")
        missing = sorted(set(self.files) - set(self.cutoffs))
        if missing:
            raise ValueError(f"no perplexity cutoffs for {', '.join(missing)} in {models_dir}: run "
                             f"`smallgiant pipeline lm cutoffs` on crawl documents of those languages first")
        self._models: dict = {}

    def _model(self, lang: str):
        model = self._models.get(lang)
        if model is None:
            from pipeline.lm.model import PerplexityModel
            sp, lm = self.files[lang]
            model = self._models[lang] = PerplexityModel(sp.local_path(), lm.local_path())
        return model

    def score(self, doc: Document) -> dict:
        lang = doc.metadata.get("language", "")
        if lang not in self.files:
            return {"perplexity_bucket": "all"}
        ppl = self._model(lang).perplexity(doc.text)
        return {"perplexity": ppl, "perplexity_bucket": bucket(ppl, self.cutoffs.get(lang))}

    def reject_reason(self, doc: Document, scores: dict) -> str | None:
        b = scores["perplexity_bucket"]
        if b == "all" or b in self.keep:
            return None
        return f"perplexity {scores['perplexity']} in bucket {b}"
