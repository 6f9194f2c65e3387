"""`smallgiant pipeline SOURCE`: one subcommand per source, with the options every source job shares."""
from __future__ import annotations

import argparse
import inspect

from pipeline.argtypes import positive_int
from pipeline.engine.keys import DEFAULT_CHUNK_DOCS
from pipeline.runtime.guard import add_output_arguments
from pipeline.sources import SOURCES, source_class


def _run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.sources.job import run
    source = source_class(args.source).from_args(args)
    run(source, args.input, args.output, beam_args, args.output_shards, args.max_files,
        args.overwrite, args.max_lease_age, args.chunk_docs, args.fresh)
    return 0


def add_parsers(sources) -> None:
    for name in SOURCES:
        cls = source_class(name)
        doc = inspect.cleandoc(cls.__doc__ or name)
        p = sources.add_parser(name, help=doc.splitlines()[0], description=doc,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--input", required=True, help="files, globs or directories on any Beam filesystem "
                                                      "(comma-separated)")
        p.add_argument("--output", required=True, help="output directory: docs/, rejects/, dead_letters/, stats.json")
        p.add_argument("--output-shards", type=positive_int,
                       help="Parquet files per output (default: one per unit of --chunk-docs documents, at most 256)")
        p.add_argument("--chunk-docs", type=positive_int, default=DEFAULT_CHUNK_DOCS,
                       help="documents per unit of work after the read pass (the grain of parallel work and "
                            "of resumed runs)")
        p.add_argument("--fresh", action="store_true",
                       help="redo every input file, even those a killed run had finished reading")
        p.add_argument("--max-files", type=positive_int, help="read at most this many input files")
        add_output_arguments(p)
        cls.add_arguments(p)
        p.set_defaults(func=_run)
