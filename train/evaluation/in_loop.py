"""Benchmarks during training (as OLMo runs them): every `eval_every` steps the trainer scores the tasks
named in `eval_tasks`, read once at the start from `eval_data_dir` (the first `eval_limit` examples of
each), with the tokenizer its dataset was made with, and logs their accuracy in metrics.jsonl next to
the validation loss.

Every process scores every example (the examples are few): a sharded model needs each process to run
the same forward passes, and greedy decoding runs a fixed number of steps when there is more than one.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from typing import Any

import torch

from train.evaluation.harness import evaluate, load_tasks, summary
from train.evaluation.scoring import LanguageModel, SentencePieceTokenizer
from train.evaluation.tasks import parse_task_list

log = logging.getLogger("smallgiant.train")


def dataset_tokenizer(manifest: dict[str, Any], data_dir: str) -> SentencePieceTokenizer:
    """The SentencePiece model the dataset was tokenized with (its manifest names the directory)."""
    info = manifest.get("tokenizer") or {}
    directory = info.get("path")
    if not directory:
        raise ValueError(f"eval_tasks: the dataset {data_dir} names no tokenizer directory, so its text "
                         "cannot be tokenized the way the model was trained")
    model_file = os.path.join(directory, "tokenizer.model")
    if not os.path.isfile(model_file):
        raise FileNotFoundError(f"eval_tasks: {model_file} (the dataset's tokenizer) not found")
    if info.get("sha256"):
        with open(model_file, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        if digest != info["sha256"]:
            raise ValueError(f"eval_tasks: {model_file} is not the tokenizer the dataset {data_dir} was made with")
    return SentencePieceTokenizer.from_file(model_file)


class InLoopEval:
    def __init__(self, tasks: list[str], data_dir: str, limit: int, tokenizer: SentencePieceTokenizer,
                 seq_len: int, batch_size: int, device: torch.device, autocast=None, distributed: bool = False):
        self.loaded = load_tasks(tasks, data_dir, None, limit or None)
        self.tokenizer, self.seq_len, self.batch_size, self.device = tokenizer, seq_len, batch_size, device
        self.autocast = autocast or contextlib.nullcontext
        self.distributed = distributed

    @classmethod
    def from_config(cls, cfg, dataset, device: torch.device, autocast=None, distributed: bool = False) -> "InLoopEval":
        tokenizer = dataset_tokenizer(dataset.manifest, dataset.directory)
        if tokenizer.vocab_size > cfg.vocab_size:
            raise ValueError(f"eval_tasks: the tokenizer has {tokenizer.vocab_size} pieces, the model {cfg.vocab_size}")
        return cls(parse_task_list(cfg.eval_tasks), cfg.eval_data_dir, cfg.eval_limit, tokenizer, cfg.seq_len,
                   cfg.micro_batch_size, device, autocast, distributed)

    def run(self, model) -> dict[str, dict]:
        """{task: {accuracy, n, metric, ...}} for the model as it is now."""
        lm = LanguageModel(model, self.tokenizer, self.device, self.seq_len, self.batch_size, self.autocast)
        with torch.no_grad():
            return summary(evaluate(lm, self.loaded, fixed_steps=self.distributed))
