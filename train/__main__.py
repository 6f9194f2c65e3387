"""`python -m train ...`: the `smallgiant train` command without the rest of the CLI, the entry point
torchrun launches (`torchrun --nproc_per_node 8 -m train --config 7b --data D --output R`)."""
from __future__ import annotations

import argparse
import logging
import sys

from pipeline.runtime.config_files import add_config_file_option, run_command
from train.cli import add_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m")  # the subcommand makes it "python -m train"
    add_parser(parser.add_subparsers(dest="job", required=True))
    add_config_file_option(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return run_command(parser, ["train", *(sys.argv[1:] if argv is None else argv)],
                           lambda args, extra: args.func(args, extra))
    except (ValueError, FileNotFoundError) as exc:
        print(f"smallgiant train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
