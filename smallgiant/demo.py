"""The end-to-end demo on the embedded samples: every stage of the recipe in order, on one machine, in
minutes, ending with a model that learned something and an HTML report (`smallgiant.report`).

Stages: the samples of the crawl and of the six other sources (each written by code, no download) ->
the six source jobs -> the Wikipedia-reference classifier (dataset, training) -> the perplexity models
(an unfiltered CC pass gives the crawl sample for the cutoffs) -> the CC job with both quality scorers ->
the tokenizer -> mixture shards from `data_manifests/demo.yaml` -> the `--plan` projection -> the tiny
model trained on the shards on the CPU -> a sample generation -> an evaluation task made from the
held-out documents, and the model's accuracy on it -> report.json and report.html.

Each stage is skipped while its outputs are up to date (`smallgiant.stages`), so a second run only
re-renders what changed. A source whose job or sample is not part of this installation is skipped with
a message, and the mixture is the demo manifest's over the sources present, shares renormalised.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import time
from typing import Any

from smallgiant.stages import Stage, run_stages

SOURCES = ("wikipedia", "github", "books", "arxiv", "stackexchange", "c4")
MANIFEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data_manifests", "demo.yaml")
# a crawl large enough that CommonCrawl, two thirds of the mixture, holds a few hundred thousand tokens
CRAWL_PAGES = {"en": 15000, "de": 60, "fr": 60, "es": 40}
CRAWL_DIR = os.path.join("samples", "commoncrawl")   # beside samples/<source>, the other sources' samples
# the samples sized so that the mixture derived from demo.yaml is a few million tokens
SAMPLE_SIZES = {"c4": {"docs": 2400}, "github": {"files_per_repo": 60}}
VOCAB_SIZE = 2048
TRAIN = {"max_steps": 300, "warmup_steps": 20, "log_every": 5, "checkpoint_every": 100, "tensorboard": False,
         "device": "cpu", "compile": "off", "val_every": 25, "val_tokens": 4096}
VALIDATION_SPLIT = {"val_share": 0.02, "val_docs": 50}    # the demo's sources are small: a larger share than the default
EVAL_TASK = {"task": "continuation", "max_examples": 200, "seed": 0}
PROMPT = "The engineer"
GENERATION = {"max_new_tokens": 48, "temperature": 0.8, "top_k": 40, "seed": 0}


def available_sources() -> tuple[list[str], dict[str, str]]:
    """The six sources whose job and sample this installation has; the others with the reason."""
    have, missing = [], {}
    for name in SOURCES:
        for module in (f"pipeline.sources.{name}", f"smallgiant.samples.{name}"):
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name and module.startswith(exc.name):  # the module itself is absent, not a dependency
                    missing[name] = f"no module {module}"
                    break
                raise
        else:
            have.append(name)
    return have, missing


def demo_manifest(root: str, sources: list[str]):
    """The demo manifest with its paths under `root`, over CommonCrawl and `sources`, shares summing to 1."""
    from tokenizer.manifest import load_manifest
    manifest = load_manifest(MANIFEST, root=root)
    keep = [s for s in manifest.sources if s.name == "commoncrawl" or s.name in sources]
    total = sum(s.share for s in keep)
    return dataclasses.replace(manifest, sources=tuple(dataclasses.replace(s, share=s.share / total) for s in keep))


def perplexity_available() -> str | None:
    """None when KenLM's programs and Python module are installed, else why the perplexity stage cannot run."""
    from pipeline.lm.model import import_kenlm
    from pipeline.lm.train import kenlm_tool
    try:
        kenlm_tool("lmplz")
        kenlm_tool("build_binary")
        import_kenlm()
    except FileNotFoundError as exc:
        return str(exc)
    return None


class Demo:
    """The demo's stages over one output directory."""

    def __init__(self, output: str, beam_args: list[str] | None = None):
        self.root = os.path.abspath(output)
        self.beam_args = beam_args or []
        self.sources, self.missing = available_sources()
        self.no_perplexity = perplexity_available() if "wikipedia" in self.sources else \
            "the Wikipedia source (its training text) is not available"

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    # -- samples and curation ---------------------------------------------------------------------------

    def write_crawl(self) -> dict:
        from smallgiant.samples.crawl import write_sample
        os.makedirs(self.path(CRAWL_DIR), exist_ok=True)
        pages = write_sample(self.path(CRAWL_DIR, "CC-SAMPLE-00000.warc.wet.gz"), pages_per_lang=CRAWL_PAGES)
        print(f"   {len(pages)} pages in {self.path(CRAWL_DIR)}")
        return {"pages": len(pages)}

    def run_source(self, name: str) -> dict:
        from pipeline.sources import source_class
        from pipeline.sources.job import run
        sample = importlib.import_module(f"smallgiant.samples.{name}")
        spec = sample.write_sample(self.path("samples", name), **SAMPLE_SIZES.get(name, {}))
        stats = run(source_class(name)(), spec, self.path(name), self.beam_args)
        return _funnel_figures(stats)

    def write_reference_sample(self) -> dict:
        from smallgiant.samples.wiki_citations import write_sample
        sample = write_sample(self.path("sample_wiki"))
        print(f"   a dump excerpt citing {len(sample.cited_urls)} URLs, a crawl of {len(sample.crawl)} pages")
        return {"cited_urls": len(sample.cited_urls), "crawl_pages": len(sample.crawl)}

    def train_classifier(self) -> dict:
        from classifier.dataset import DatasetConfig, run as build_dataset
        from classifier.model import train
        build_dataset(DatasetConfig(output=self.path("refdata"), wikipedia=self.path("sample_wiki", "*.xml"),
                                    crawl=self.path("sample_wiki", "crawl.warc.wet.gz")), self.beam_args)
        report = train(self.path("refdata"), self.path("refmodel"))
        t = report["test"]
        print(f"   test split: ROC-AUC {t['roc_auc']:.3f}, precision {t['precision']:.3f}, recall {t['recall']:.3f} "
              f"at threshold {report['threshold']:.3f}")
        return {"items": sum(s["total"] for s in report["split_sizes"].values()), "unit": "pages"}

    def run_cc(self, out: str, scorers: bool) -> dict:
        from pipeline.cc.config import CCConfig
        from pipeline.cc.job import run
        cfg = CCConfig(input=self.path(CRAWL_DIR, "*.warc.wet.gz"), output=self.path(out))
        if scorers and not self.no_perplexity:
            from pipeline.lm.scorer import PerplexityScorer
            cfg.scorers.append(PerplexityScorer(self.path("lm")))
        if scorers:
            from classifier.scorer import ReferenceScorer
            cfg.scorers.append(ReferenceScorer(self.path("refmodel")))
        return _funnel_figures(run(cfg, self.beam_args))

    def train_perplexity(self) -> dict:
        """CCNet's n-gram model of English Wikipedia, and its cutoffs over the unfiltered crawl."""
        from pipeline.lm.cutoffs import compute_cutoffs
        from pipeline.lm.train import train_language_model
        text = self.path("lm_text", "wikipedia-en.txt")
        docs = _write_language_text(self.path("wikipedia", "docs"), "en", text)
        meta = train_language_model(text, "en", self.path("lm"), vocab_size=4000, seed=0)
        cutoffs = compute_cutoffs(self.path("cc_unfiltered", "docs", "*.parquet"), self.path("lm"))
        print(f"   en: {docs} Wikipedia documents, {meta['lines']:,} lines; cutoffs {cutoffs.get('en')}")
        return {"items": meta["lines"], "unit": "lines", "cutoffs": cutoffs}

    # -- tokenizer, shards, model ------------------------------------------------------------------------

    def train_tokenizer(self) -> dict:
        from tokenizer.train import train_tokenizer
        report = train_tokenizer(demo_manifest(self.root, self.sources), self.path("tokenizer"),
                                 vocab_size=VOCAB_SIZE, seed=0, threads=1)
        held = report["held_out"]["all"]
        print(f"   vocabulary {report['vocab_size']}, {held['bytes_per_token']} bytes per token on held-out text")
        return {"items": report["training_text"]["bytes"], "unit": "bytes"}

    def build_shards(self) -> dict:
        from tokenizer.shards import ShardConfig, run
        s = run(ShardConfig(demo_manifest(self.root, self.sources), self.path("tokenizer"), self.path("shards"),
                            **VALIDATION_SPLIT), self.beam_args)
        return {"items": s["tokens_encoded"], "unit": "tokens", "shards": s["shards"]}

    def make_plan(self) -> dict:
        from pipeline.runtime.guard import write_atomically
        from tokenizer.plan import format_plan, make_plan
        plan = make_plan(demo_manifest(self.root, self.sources), self.path("tokenizer"))
        plan["whole_build"] = _whole_build_plan()
        os.makedirs(self.path("plan"), exist_ok=True)
        write_atomically(self.path("plan", "plan.json"), json.dumps(plan, indent=1, sort_keys=True).encode())
        print(format_plan(plan))
        return {"items": sum(s["sample_tokens"] for s in plan["sources"].values()), "unit": "tokens"}

    def train_model(self) -> dict:
        from train.config import preset
        from train.trainer import train
        cfg = dataclasses.replace(preset("tiny"), **TRAIN)
        tmp = self.path(".model.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        summary = train(cfg, self.path("shards"), tmp)
        shutil.rmtree(self.path("model"), ignore_errors=True)
        os.replace(tmp, self.path("model"))
        return {"items": summary["tokens"], "unit": "tokens", "final_loss": summary["final_loss"]}

    def generate(self) -> dict:
        from pipeline.runtime.guard import write_atomically
        from train.generate import Generator
        gen = Generator.from_run(self.path("model"), self.path("tokenizer"))
        out = gen.generate(PROMPT, **GENERATION)
        write_atomically(self.path("generation.json"), json.dumps(out, indent=1, sort_keys=True).encode())
        print(f"   {out['text']!r}")
        return {"items": out["new_tokens"], "unit": "tokens"}

    def write_eval_task(self) -> dict:
        """The continuation task from the held-out documents the shard job set aside (shards/val)."""
        from train.evaluation.continuation import write_task
        info = write_task(self.path("shards", "val"), self.path("tokenizer", "tokenizer.model"), self.path("eval"),
                          EVAL_TASK["max_examples"], EVAL_TASK["seed"])
        print(f"   {info['examples']} examples of {info['choices']} endings from held-out documents: {info['sources']}")
        return {"items": info["examples"], "unit": "examples"}

    def evaluate(self) -> dict:
        import torch

        from pipeline.runtime.guard import write_atomically
        from train.config import preset
        from train.evaluation.harness import evaluate, format_table, load_language_model, load_tasks
        torch.set_num_threads(preset("tiny").cpu_threads)    # the tiny model's matrices, as in training
        lm, info = load_language_model(self.path("model"), "cpu", tokenizer_dir=self.path("tokenizer"))
        results = evaluate(lm, load_tasks([EVAL_TASK["task"]], self.path("eval")))
        write_atomically(self.path("eval", "results.json"),
                         json.dumps({"model": info, "tasks": results}, indent=1, sort_keys=True).encode())
        print(format_table(results))
        r = results[EVAL_TASK["task"]]
        return {"items": r["n"], "unit": "examples", "accuracy": r["accuracy"], "chance": r["chance"]}

    def write_report(self) -> dict:
        from smallgiant.report import write_report
        report = write_report(self.root, ["commoncrawl", *self.sources], self.missing,
                              [s.name for s in self.stages()])
        print(f"   {self.path('report.html')} and report.json")
        return {"sections": len(report["sections"])}

    # -- the graph ---------------------------------------------------------------------------------------

    def stages(self) -> list[Stage]:
        st = [Stage("crawl_sample", "the sample crawl (CommonCrawl WET)", self.write_crawl,
                    (CRAWL_DIR,), params={"pages": CRAWL_PAGES})]
        for name in self.sources:
            st.append(Stage(f"source_{name}", f"{name}: sample and source job",
                            lambda name=name: self.run_source(name), (f"{name}/stats.json",)))
        st += [Stage("reference_sample", "Wikipedia-reference classifier: sample dump and crawl",
                     self.write_reference_sample, ("sample_wiki",)),
               Stage("classifier", "Wikipedia-reference classifier: dataset and training", self.train_classifier,
                     ("refdata", "refmodel/report.json"), after=("reference_sample",))]
        scorers_after = ("crawl_sample", "classifier")
        if not self.no_perplexity:
            st += [Stage("cc_unfiltered", "CommonCrawl job without quality scorers (sample for the cutoffs)",
                         lambda: self.run_cc("cc_unfiltered", scorers=False), ("cc_unfiltered/stats.json",),
                         after=("crawl_sample",)),
                   Stage("perplexity", "perplexity models: KenLM 5-gram on Wikipedia (en), cutoffs",
                         self.train_perplexity, ("lm",), after=("source_wikipedia", "cc_unfiltered"))]
            scorers_after += ("perplexity",)
        sources = ("cc",) + tuple(f"source_{n}" for n in self.sources)
        st += [Stage("cc", "CommonCrawl job with the quality scorers", lambda: self.run_cc("cc", scorers=True),
                     ("cc/stats.json",), after=scorers_after, params={"perplexity": not self.no_perplexity}),
               Stage("tokenizer", "tokenizer (SentencePiece BPE)", self.train_tokenizer, ("tokenizer/report.json",),
                     after=sources, params={"vocab_size": VOCAB_SIZE, "sources": self.sources}),
               Stage("shards", "mixture shards", self.build_shards, ("shards/dataset.json", "shards/stats.json"),
                     after=("tokenizer",)),
               Stage("plan", "the --plan projection", self.make_plan, ("plan/plan.json",), after=("tokenizer",)),
               Stage("train", "tiny model on the CPU", self.train_model, ("model/summary.json",), after=("shards",),
                     params=TRAIN),
               Stage("generate", "sample generation", self.generate, ("generation.json",), after=("train",),
                     params={"prompt": PROMPT, **GENERATION}),
               Stage("eval_task", "evaluation task from held-out documents", self.write_eval_task,
                     ("eval/continuation/continuation.jsonl",), after=("shards",), params=EVAL_TASK),
               Stage("eval", "the model on the evaluation task", self.evaluate, ("eval/results.json",),
                     after=("train", "eval_task"))]
        st.append(Stage("report", "report.html and report.json", self.write_report, ("report.html", "report.json"),
                        after=tuple(s.name for s in st)))
        return st


def _funnel_figures(stats: dict[str, Any]) -> dict:
    return {"items": stats["documents_in"], "unit": "documents", "kept": stats["documents_out"]}


def _write_language_text(docs_dir: str, language: str, path: str) -> int:
    """The text of the documents in `language` (metadata "language"), one file; the number of documents."""
    import glob

    from pipeline.doc_files import iter_rows
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = 0
    with open(f"{path}.tmp", "w", encoding="utf-8") as out:
        for file in sorted(glob.glob(os.path.join(docs_dir, "*.parquet"))):
            for row in iter_rows(file, ["text", "metadata"]):
                meta = json.loads(row["metadata"]) if isinstance(row["metadata"], str) else (row["metadata"] or {})
                if meta.get("language", language) == language and row["text"]:
                    out.write(row["text"] + "\n")
                    n += 1
    if not n:
        raise ValueError(f"no {language} documents in {docs_dir}")
    os.replace(f"{path}.tmp", path)
    return n


def run_demo(output: str, beam_args: list[str] | None = None, force: bool = False, overwrite: bool = False) -> int:
    """Every stage into `output`, which the demo holds as its own (`pipeline.runtime.guard`): a directory
    with files the demo did not write is refused unless `overwrite`."""
    from pipeline.runtime.guard import claim_output
    demo = Demo(output, beam_args)
    with claim_output(demo.root, "demo", ["*"], overwrite=overwrite) as claim:
        try:
            return _run_stages(demo, force)
        finally:
            claim.adopt_written()


def _run_stages(demo: Demo, force: bool) -> int:
    for name, why in demo.missing.items():
        print(f"== {name}: not available in this installation ({why}); the mixture goes without it")
    if demo.no_perplexity:
        print(f"== perplexity filter: not available ({demo.no_perplexity}); the CC job runs without it")
    t0 = time.time()
    done = run_stages(demo.root, demo.stages(), force)
    ran = [d for d in done if d["ran"]]
    print(f"demo finished in {time.time() - t0:.1f} s: {len(ran)} stages ran, {len(done) - len(ran)} were up to date")
    print(f"report: {demo.path('report.html')}")
    return 0


def _whole_build_plan() -> dict | None:
    """`smallgiant plan` for LLaMA-1 7B on the paper's manifest (in a clone: data_manifests/llama1.yaml)."""
    from smallgiant.plan import TrainingOptions
    from smallgiant.plan import make_plan as make_build_plan
    from tokenizer.manifest import load_manifest
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data_manifests", "llama1.yaml")
    return make_build_plan(load_manifest(path), TrainingOptions(model="7b")) if os.path.isfile(path) else None
