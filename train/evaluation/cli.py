"""The `eval` subcommand of `smallgiant`:

    smallgiant eval RUN_OR_HF_DIR --tasks boolq,piqa,... --data-dir DIR [--shots K] [--limit N]
                    [--batch-size B] [--device cpu|cuda] [--output results.json]

Scores the tasks on a trainer run's latest checkpoint or a Hugging Face LLaMA directory, prints a table
beside the paper's figures and writes the results as JSON. Task files are read from DIR only, in their
published layouts (`train.evaluation.tasks`); a missing or malformed one is an error (exit 2).
"""
from __future__ import annotations

import argparse
import json
import os

from pipeline.argtypes import non_negative_int, positive_int
from train.evaluation.tasks import TASKS, parse_task_list


def _task_list(text: str) -> list[str]:
    try:
        return parse_task_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(jobs) -> None:
    p = jobs.add_parser(
        "eval", help="zero-/few-shot benchmarks as the LLaMA-1 paper scores them (section 3)",
        description="Score a run directory (latest checkpoint) or a Hugging Face LLaMA directory on "
                    "benchmarks read from local files, the way the LLaMA-1 paper does: multiple choice by "
                    "the likelihood per character (OpenBookQA, BoolQ: relative to the completion's likelihood "
                    "after \"Answer:\"), closed-book QA by greedy decoding and exact match, MMLU 5-shot.",
        epilog="Tasks: " + ", ".join(TASKS) + ".")
    p.add_argument("model", metavar="RUN_OR_HF_DIR", help="a trainer run directory or a Hugging Face directory")
    p.add_argument("--tasks", required=True, type=_task_list, help="comma-separated task names")
    p.add_argument("--data-dir", required=True, help="directory holding each task's files in its published layout")
    p.add_argument("--shots", type=non_negative_int,
                   help="solved examples before each one (default: 0, MMLU 5)")
    p.add_argument("--limit", type=positive_int, help="score only the first N examples of each task")
    p.add_argument("--batch-size", type=positive_int, default=16, help="sequences per forward pass (default 16)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--tokenizer", help="tokenizer directory holding tokenizer.model (default: the run's, or the "
                                       "Hugging Face directory's own)")
    p.add_argument("--output", help="write the results here as JSON")
    p.set_defaults(func=run_command, beam=False)


def run_command(args: argparse.Namespace, extra: list[str]) -> int:
    from train.evaluation.harness import evaluate, format_table, load_language_model, load_tasks
    if not os.path.isdir(args.data_dir):
        raise FileNotFoundError(f"--data-dir {args.data_dir} is not a directory")
    loaded = load_tasks(args.tasks, args.data_dir, args.shots, args.limit)   # every file checked first
    lm, info = load_language_model(args.model, args.device, args.batch_size, args.tokenizer)
    results = evaluate(lm, loaded, args.shots)
    print(format_table(results))
    if args.output:
        from pipeline.runtime.guard import write_atomically
        report = {"model": info, "data_dir": os.path.abspath(args.data_dir), "tasks": results}
        write_atomically(args.output, (json.dumps(report, indent=1, sort_keys=True) + "\n").encode())
        print(f"results: {args.output}")
    return 0
