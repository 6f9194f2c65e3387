"""The `smallgiant` command: one subcommand per job. Each job's modules are imported only when it runs,
so `smallgiant --help` is fast and the trainer never pulls in Beam."""
from __future__ import annotations

import argparse
import logging
import sys

from smallgiant import __version__


def _cc(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.cc.config import from_args
    from pipeline.cc.job import run
    run(from_args(args), beam_args)
    return 0


def _add_cc(sub) -> None:
    from pipeline.cc.config import add_arguments
    p = sub.add_parser(
        "cc", help="CommonCrawl WET/WARC -> curated documents (CCNet-style, Apache Beam)",
        description="CommonCrawl WET/WARC -> dedup -> language ID -> quality -> Parquet. Options this command "
                    "does not know are Beam pipeline options, e.g. --runner DataflowRunner --project P "
                    "--region R --temp_location gs://B/tmp --setup_file ./pyproject.toml.")
    add_arguments(p)
    p.set_defaults(func=_cc)


def _demo(args: argparse.Namespace, beam_args: list[str]) -> int:
    from smallgiant.demo import run_demo
    return run_demo(args.output, beam_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smallgiant", description="LLaMA-1's pretraining recipe end to end: curation, classifier, "
                                       "tokenizer and shards, trainer. One subcommand per job.")
    parser.add_argument("--version", action="version", version=f"smallgiant {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)

    pipe = jobs.add_parser("pipeline", help="curation jobs (Apache Beam)",
                           description="Curation jobs on Apache Beam: DirectRunner by default, or any runner.")
    _add_cc(pipe.add_subparsers(dest="source", metavar="SOURCE", required=True))

    demo = jobs.add_parser("demo", help="run the end-to-end demo on the embedded sample",
                           description="Writes the embedded sample crawl and runs the curation job on it.")
    demo.add_argument("--output", default="build/demo", help="demo directory (default: build/demo)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if args.job != "pipeline" and beam_args:
        parser.error(f"unrecognized arguments: {' '.join(beam_args)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("apache_beam", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args, beam_args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"smallgiant: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
