"""The `smallgiant` command: one subcommand per job. Each job's modules are imported only when it runs,
so `smallgiant --help` is fast and the trainer never pulls in Beam."""
from __future__ import annotations

import argparse
import difflib
import logging
import sys

from pipeline.argtypes import (float_in, fraction, int_at_least, non_negative_int, open_fraction, percentile_pair,
                                positive_float, positive_int, seed)
from pipeline.runtime.config_files import add_config_file_option, run_command
from smallgiant import __version__


def _cc(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.cc.config import from_args
    from pipeline.cc.job import run
    cfg = from_args(args)
    if args.quality_threshold is not None and not args.quality_model:
        raise ValueError("--quality-threshold needs --quality-model")
    if args.lm_models:
        from pipeline.lm.scorer import PerplexityScorer
        cfg.scorers.append(PerplexityScorer(args.lm_models, tuple(b.strip() for b in args.keep_buckets.split(","))))
    if args.quality_model:
        from classifier.scorer import ReferenceScorer
        cfg.scorers.append(ReferenceScorer(args.quality_model, args.quality_threshold))
    run(cfg, beam_args, args.overwrite, args.max_lease_age)
    return 0


def _add_cc(sub) -> None:
    from pipeline.cc.config import add_arguments
    from pipeline.runtime.guard import add_output_arguments
    p = sub.add_parser(
        "cc", help="CommonCrawl WET/WARC -> curated documents (CCNet-style, Apache Beam)",
        description="CommonCrawl WET/WARC -> dedup -> language ID -> quality -> Parquet. Options this command "
                    "does not know are Beam pipeline options, e.g. --runner DataflowRunner --project P "
                    "--region R --temp_location gs://B/tmp --setup_file ./pyproject.toml.")
    add_arguments(p)
    add_output_arguments(p)
    p.add_argument("--lm-models", help="a directory of <lang>.sp.model + <lang>.arpa.bin (+ cutoffs.json): "
                                       "perplexity and bucket per document (CCNet)")
    p.add_argument("--keep-buckets", default="head,middle", help="perplexity buckets kept (with --lm-models)")
    p.add_argument("--quality-model", help="a model directory from `smallgiant classifier train`: score pages "
                                           "with the Wikipedia-reference classifier and drop those below its threshold")
    p.add_argument("--quality-threshold", type=fraction, help="override the threshold saved with the model")
    p.set_defaults(func=_cc)


def _lm_train(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.lm.train import train_language_model
    meta = train_language_model(args.input, args.language, args.output, args.order, args.vocab_size,
                                args.max_lines, args.kenlm_bin, seed=args.seed, overwrite=args.overwrite,
                                max_lease_age=args.max_lease_age)
    print(f"{args.language}: {meta['lines']:,} lines, {meta['pieces']:,} pieces, vocabulary {meta['vocab_size']:,}, "
          f"{meta['order']}-gram model in {args.output} ({meta['seconds']} s)")
    return 0


def _lm_cutoffs(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.lm.cutoffs import compute_cutoffs
    cutoffs = compute_cutoffs(args.input, args.models, args.percentiles, args.sample_docs, args.seed,
                              args.overwrite, args.max_lease_age)
    for lang, c in cutoffs.items():
        print(f"{lang}: head < {c['head']}, middle < {c['middle']} ({c['documents']:,} documents)")
    return 0


def _add_lm(sources) -> None:
    from pipeline.runtime.guard import add_output_arguments
    lm = sources.add_parser("lm", help="n-gram language models for the perplexity filter (CCNet)",
                            description="Train per-language SentencePiece + KenLM 5-gram models, and compute "
                                        "perplexity cutoffs on a crawl sample.")
    sub = lm.add_subparsers(dest="step", metavar="STEP", required=True)
    t = sub.add_parser("train", help="SentencePiece + 5-gram modified Kneser-Ney KenLM model of one language")
    t.add_argument("--input", required=True, help="Wikipedia documents: Parquet, JSONL or text files (globs)")
    t.add_argument("--language", required=True)
    t.add_argument("--output", required=True, help="models directory")
    t.add_argument("--order", type=positive_int, default=5)
    t.add_argument("--vocab-size", type=positive_int, default=65536, help="SentencePiece vocabulary (an upper bound)")
    t.add_argument("--max-lines", type=positive_int, help="use at most this many lines of text")
    t.add_argument("--kenlm-bin", help="directory holding lmplz and build_binary")
    t.add_argument("--seed", type=seed, default=0, help="SentencePiece's seed (same input and seed: same model)")
    add_output_arguments(t)
    t.set_defaults(func=_lm_train, beam=False)
    c = sub.add_parser("cutoffs", help="per-language perplexity cutoffs over a sample of crawl documents")
    c.add_argument("--input", required=True, help="documents with a language in their metadata (Parquet globs)")
    c.add_argument("--models", required=True, help="models directory; cutoffs.json is written there")
    c.add_argument("--percentiles", type=percentile_pair, default=(30.0, 60.0),
                   help="head and middle bucket cutoffs as percentiles of perplexity (default 30,60)")
    c.add_argument("--sample-docs", type=positive_int, default=10_000)
    c.add_argument("--seed", type=seed, default=0)
    add_output_arguments(c)
    c.set_defaults(func=_lm_cutoffs, beam=False)


def _classifier_dataset(args: argparse.Namespace, beam_args: list[str]) -> int:
    from classifier.dataset import DatasetConfig, run
    run(DatasetConfig(output=args.output, wikipedia=args.wikipedia, crawl=args.crawl, positives=args.positives,
                      negatives=args.negatives, min_chars=args.min_chars,
                      negatives_per_positive=args.negatives_per_positive, valid_share=args.valid_share,
                      test_share=args.test_share, seed=args.seed), beam_args, args.overwrite, args.max_lease_age)
    return 0


def _classifier_train(args: argparse.Namespace, beam_args: list[str]) -> int:
    import dataclasses

    from classifier.model import DEFAULT_GRID, TrainParams, train
    names = ("word_ngrams", "dim", "epoch", "lr", "min_count")
    fixed = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    params = TrainParams(**fixed, threads=args.threads, seed=args.seed) if fixed else None
    grid = [dataclasses.replace(c, threads=args.threads, seed=args.seed) for c in DEFAULT_GRID]
    report = train(args.data, args.output, params, target_precision=args.target_precision, grid=grid,
                   overwrite=args.overwrite, max_lease_age=args.max_lease_age)
    t = report["test"]
    print(f"test: ROC-AUC {t['roc_auc']:.4f}, precision {t['precision']:.4f}, recall {t['recall']:.4f}, "
          f"F1 {t['f1']:.4f} at threshold {report['threshold']:.4f} ({report['threshold_rule']})")
    print(f"model, report.json and threshold.png in {args.output}")
    return 0


def _classifier_score(args: argparse.Namespace, beam_args: list[str]) -> int:
    from classifier.score import run
    run(args.model, args.input, args.output, beam_args, args.overwrite, args.max_lease_age)
    return 0


def _add_classifier(jobs) -> None:
    from pipeline.runtime.guard import add_output_arguments
    c = jobs.add_parser("classifier", help="the Wikipedia-reference quality classifier",
                        description="Build the training set, train and evaluate, score documents.")
    sub = c.add_subparsers(dest="step", metavar="STEP", required=True)
    d = sub.add_parser("dataset", help="reference pages vs random crawl pages (Beam)",
                       description="Positives: crawl pages cited by Wikipedia articles. Negatives: a uniform "
                                   "random sample of the other crawl pages. Or ready files of each.")
    d.add_argument("--wikipedia", help="pages-articles XML dump(s), bz2 or plain (globs, comma-separated)")
    d.add_argument("--crawl", help="WET/WARC files of the crawl (globs, comma-separated, or a listing)")
    d.add_argument("--positives", help="ready positives: Parquet or JSONL files with a text column")
    d.add_argument("--negatives", help="ready negatives: Parquet or JSONL files with a text column")
    d.add_argument("--output", required=True)
    d.add_argument("--min-chars", type=non_negative_int, default=1000, help="drop pages shorter than this")
    d.add_argument("--negatives-per-positive", type=positive_float, default=1.0)
    d.add_argument("--valid-share", type=open_fraction, default=0.1)
    d.add_argument("--test-share", type=open_fraction, default=0.1)
    d.add_argument("--seed", type=seed, default=0)
    add_output_arguments(d)
    d.set_defaults(func=_classifier_dataset)
    t = sub.add_parser("train", help="train fastText, choose the threshold, evaluate on the test split",
                       description="Without hyper-parameters, a small grid is tried and the best validation "
                                   "ROC-AUC wins; giving any of them trains that setting alone.")
    t.add_argument("--data", required=True, help="a directory made by `classifier dataset`")
    t.add_argument("--output", required=True, help="model directory")
    for name, typ in (("word-ngrams", int_at_least(2)), ("dim", positive_int), ("epoch", positive_int),
                      ("lr", positive_float), ("min-count", positive_int)):
        t.add_argument(f"--{name}", type=typ)
    t.add_argument("--threads", type=positive_int, default=1, help="fastText threads (1 is reproducible)")
    t.add_argument("--seed", type=seed, default=0)
    t.add_argument("--target-precision", type=float_in(0, 1, low_open=True), default=0.9,
                   help="threshold rule: the lowest threshold with this validation precision")
    add_output_arguments(t)
    t.set_defaults(func=_classifier_train, beam=False)
    s = sub.add_parser("score", help="add reference_score to documents' metadata (Beam)")
    s.add_argument("--model", required=True)
    s.add_argument("--input", required=True, help="Parquet files in the document schema (globs)")
    s.add_argument("--output", required=True)
    add_output_arguments(s)
    s.set_defaults(func=_classifier_score)


def _demo(args: argparse.Namespace, beam_args: list[str]) -> int:
    from smallgiant.demo import run_demo
    return run_demo(args.output, beam_args, force=args.force, overwrite=args.overwrite)


def _plan(args: argparse.Namespace, beam_args: list[str]) -> int:
    from smallgiant.plan import TrainingOptions, format_plan, make_plan, write_json
    from tokenizer.manifest import load_manifest
    from tokenizer.plan import Prices
    opts = TrainingOptions(model=args.model, gpu=args.gpu, gpus=args.gpus, tokens=args.train_tokens,
                           tokens_per_second_per_gpu=args.tokens_per_second_per_gpu, mfu=args.mfu, pue=args.pue,
                           kg_per_kwh=args.carbon_kg_per_kwh, gpu_hour_usd=args.gpu_hour_usd)
    prices = Prices(vcpu_hour=args.vcpu_hour_usd, gb_hour=args.gb_hour_usd, shuffle_gb=args.shuffle_gb_usd)
    plan = make_plan(load_manifest(args.manifest), opts, prices)
    print(format_plan(plan))
    if args.json:
        write_json(args.json, plan)
    return 0


def _add_plan(jobs) -> None:
    from pipeline.argtypes import non_negative_float
    from smallgiant.plan import GPUS
    from tokenizer.plan import Prices
    from train.config import PRESET_GPUS
    p = jobs.add_parser("plan", help="core-hours, GPU-hours, energy and carbon of the whole build, before it runs",
                        description="Price every stage: each source's curation, classifier and perplexity "
                                    "scoring, tokenization and shards, and training, each line saying whether its "
                                    "throughput was measured here (benchmarks/RESULTS.md) or assumed.")
    p.add_argument("--manifest", required=True, help="a data manifest with each source's disk size")
    p.add_argument("--model", choices=sorted(PRESET_GPUS), default="7b", help="paper preset (default 7b)")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--tokens-per-second-per-gpu", type=positive_float, help="training throughput per GPU")
    speed.add_argument("--mfu", type=float_in(0, 1, low_open=True), help="model FLOPs utilisation (default: "
                                                                         "the paper's 65B run, 0.495)")
    p.add_argument("--gpu", choices=sorted(GPUS), default="a100-80gb")
    p.add_argument("--gpus", type=positive_int, help="GPUs training at once (default: the preset's cluster)")
    p.add_argument("--train-tokens", type=positive_int, help="training tokens (default: the manifest's total)")
    p.add_argument("--pue", type=float_in(1), default=1.1, help="data centre PUE (paper: 1.1)")
    p.add_argument("--carbon-kg-per-kwh", type=non_negative_float, default=0.385, help="paper: 0.385 (US mean)")
    p.add_argument("--gpu-hour-usd", type=non_negative_float, help="GPU-hour price (default: GPU-hours unpriced)")
    prices = Prices()
    for option, default, what in (("--vcpu-hour-usd", prices.vcpu_hour, "vCPU-hour price"),
                                  ("--gb-hour-usd", prices.gb_hour, "memory GB-hour price"),
                                  ("--shuffle-gb-usd", prices.shuffle_gb, "shuffle price per GB")):
        p.add_argument(option, type=non_negative_float, default=default, help=f"Dataflow {what}")
    p.add_argument("--json", help="also write the plan here (a new file, or an earlier plan of this command)")
    p.set_defaults(func=_plan, beam=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smallgiant", description="LLaMA-1's pretraining recipe end to end: curation, classifier, "
                                       "tokenizer and shards, trainer. One subcommand per job.")
    parser.add_argument("--version", action="version", version=f"smallgiant {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)

    pipe = jobs.add_parser("pipeline", help="curation jobs (Apache Beam)",
                           description="Curation jobs on Apache Beam: DirectRunner by default, or any runner.")
    sources = pipe.add_subparsers(dest="source", metavar="SOURCE", required=True)
    _add_cc(sources)
    _add_lm(sources)
    from pipeline.sources.cli import add_parsers
    add_parsers(sources)

    _add_classifier(jobs)

    from tokenizer.cli import add_parser as add_tokenizer
    from tokenizer.shards_cli import add_step as add_shards
    add_shards(add_tokenizer(jobs))

    from train.cli import add_parser as add_train
    add_train(jobs)
    from train.evaluation.cli import add_parser as add_eval
    add_eval(jobs)
    _add_plan(jobs)

    demo = jobs.add_parser("demo", help="run the end-to-end demo on the embedded samples",
                           description="Every stage in order on the embedded samples: curation of the seven "
                                       "sources, the reference classifier, the tokenizer, mixture shards, the "
                                       "tiny model trained on the CPU, its score on a continuation task built "
                                       "from held-out documents and a sample generation; then report.html. "
                                       "Stages whose outputs are up to date are skipped.")
    demo.add_argument("--output", default="build/demo", help="demo directory (default: build/demo)")
    demo.add_argument("--force", action="store_true", help="run every stage again, up to date or not")
    demo.add_argument("--overwrite", action="store_true",
                      help="use a directory that holds files the demo did not write (they are left alone)")
    demo.set_defaults(func=_demo)
    add_config_file_option(parser)
    return parser


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command the arguments chose: `smallgiant pipeline cc` -> cc's parser."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs else None
        if chosen is None:
            return parser
        parser = subs[0].choices[chosen]


def _unknown_message(unknown: list[str], known: list[str]) -> str:
    options = [a for a in unknown if a.startswith("-")]
    if not options:
        return f"unrecognized arguments: {' '.join(unknown)}"
    name = options[0].partition("=")[0]
    close = difflib.get_close_matches(name, [k for k in known if k.startswith("--")], n=1)
    return f"unknown option {name}" + (f"; did you mean {close[0]}?" if close else "")


def job_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, leftovers: list[str]) -> list[str]:
    """What the job is handed of the arguments its own options left: Beam pipeline options for a Beam job,
    everything for a job that reads them itself (`own_arguments`, the trainer's config overrides), nothing
    for the others. Anything else is a usage error (exit 2) naming the closest valid option."""
    if getattr(args, "own_arguments", False):
        return leftovers
    command = _chosen_parser(parser, args)
    known = [s for action in command._actions for s in action.option_strings]
    unknown = leftovers
    if getattr(args, "beam", True) and leftovers:
        from pipeline.runtime.runner import beam_option_names, unknown_beam_args
        try:
            unknown = unknown_beam_args(leftovers)
        except ValueError as exc:
            command.error(str(exc))
        known += beam_option_names()
    if unknown:
        command.error(_unknown_message(unknown, known))
    return leftovers


def _run_job(parser: argparse.ArgumentParser, args: argparse.Namespace, leftovers: list[str]) -> int:
    beam_args = job_arguments(parser, args, leftovers)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("apache_beam", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return args.func(args, beam_args)


BEAM_JOBS = ("pipeline", "classifier", "tokenizer", "demo")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in BEAM_JOBS:   # before any thread exists (pipeline.runtime.memory)
        from pipeline.runtime.memory import one_malloc_arena
        one_malloc_arena()
    parser = build_parser()
    try:
        return run_command(parser, argv, lambda args, leftovers: _run_job(parser, args, leftovers))
    except (ValueError, FileNotFoundError) as exc:
        print(f"smallgiant: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
