"""Run evaluation tasks on a model and gather the results: accuracy (or exact match), the number of
examples, the metric and the normalisation per task, MMLU per subject, and the paper's figures for the
same task and shots; `format_table` prints them side by side.

`load_language_model` reads either a trainer run directory (its latest checkpoint, through
train.generate's loader, with the tokenizer run.json records) or a Hugging Face LLaMA directory (through
train/import_hf.py's reader, with its SentencePiece tokenizer.model), then moves the model to the device.
"""
from __future__ import annotations

import os
import time
from typing import Any

import torch

from train.evaluation.generation import answer_questions
from train.evaluation.paper import SIZES, paper_figures
from train.evaluation.scoring import LanguageModel, SentencePieceTokenizer, score_choices
from train.evaluation.tasks import TASKS, load_task


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here")
    return torch.device(name)


def _bf16_autocast(device: torch.device):
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return None


def load_language_model(path: str, device: str = "cpu", batch_size: int = 16,
                        tokenizer_dir: str | None = None) -> tuple[LanguageModel, dict[str, Any]]:
    """The model in `path` (a run directory or a Hugging Face directory) on `device`; and what was loaded."""
    dev = resolve_device(device)
    if os.path.isfile(os.path.join(path, "run.json")):
        from train.generate import Generator
        gen = Generator.from_run(path, tokenizer_dir)
        model, tokenizer = gen.model, SentencePieceTokenizer(gen.sp)
        info = {"kind": "run", "checkpoint": gen.checkpoint, "step": gen.step}
    else:
        model, tokenizer, info = _load_hf(path, tokenizer_dir)
    model = model.to(dev).eval()
    autocast = _bf16_autocast(dev)
    lm = LanguageModel(model, tokenizer, dev, model.cfg.seq_len, batch_size,
                       **({"autocast": autocast} if autocast else {}))
    return lm, {**info, "path": os.path.abspath(path), "device": str(dev),
                "parameters": sum(p.numel() for p in model.parameters()), "seq_len": model.cfg.seq_len}


def _load_hf(hf_dir: str, tokenizer_dir: str | None):
    from train.config import TrainConfig
    from train.import_hf import config_from_hf, load_model, read_hf_config
    cfg = config_from_hf(read_hf_config(hf_dir), TrainConfig(name="hf", max_steps=1, warmup_steps=0, device="cpu",
                                                             compile="off", activation_checkpointing="none"))
    model_file = os.path.join(tokenizer_dir or hf_dir, "tokenizer.model")
    if not os.path.isfile(model_file):
        raise FileNotFoundError(f"{model_file} not found: the evaluation reads a SentencePiece tokenizer.model "
                                "(LLaMA's own releases carry one)")
    tokenizer = SentencePieceTokenizer.from_file(model_file)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} pieces, the model only {cfg.vocab_size}")
    return load_model(cfg, hf_dir), tokenizer, {"kind": "hugging_face"}


def evaluate_task(lm: LanguageModel, name: str, examples: list, shots: int | None = None,
                  fixed_steps: bool = False) -> dict:
    """One task's result over its loaded examples (`load_task`, with the same `shots`)."""
    spec = TASKS[name]
    shots = spec.default_shots if shots is None else shots
    t0 = time.perf_counter()
    result: dict[str, Any] = {"task": name, "n": len(examples), "shots": shots, "normalisation": spec.normalisation}
    if spec.kind == "exact_match":
        rows = answer_questions(lm, examples, fixed_steps=fixed_steps)
        result.update(metric="exact_match", accuracy=_mean([r["correct"] for r in rows]),
                      predictions=[r["prediction"] for r in rows[:5]])
    else:
        rows = score_choices(lm, examples, spec.normalisation)
        result.update(metric="accuracy", accuracy=_mean([r["pick"] == r["label"] for r in rows]),
                      accuracy_unnormalised=_mean([r["pick_unnormalised"] == r["label"] for r in rows]),
                      chance=_mean([1 / len(ex.continuations) for ex in examples]))
        if name == "mmlu":
            result.update(_mmlu_subjects(examples, rows))
    result["seconds"] = round(time.perf_counter() - t0, 3)
    figures = paper_figures(name, shots)
    if figures:
        result["paper"] = {"table": figures[0], **{size: figures[1][size] for size in SIZES}}
    return result


def _mean(values: list) -> float:
    return sum(map(float, values)) / len(values) if values else 0.0


def _mmlu_subjects(examples: list, rows: list[dict]) -> dict:
    subjects: dict[str, list[bool]] = {}
    for ex, row in zip(examples, rows):
        subjects.setdefault(ex.subject, []).append(row["pick"] == row["label"])
    per = {s: {"accuracy": _mean(v), "n": len(v)} for s, v in sorted(subjects.items())}
    return {"subjects": per, "subject_mean": _mean([p["accuracy"] for p in per.values()])}


def load_tasks(tasks: list[str], data_dir: str, shots: int | None = None, limit: int | None = None) -> dict[str, list]:
    """Every task's examples (each file read and checked before any model is loaded or scored)."""
    return {name: load_task(name, data_dir, shots, limit) for name in tasks}


def evaluate(lm: LanguageModel, loaded: dict[str, list], shots: int | None = None,
             fixed_steps: bool = False) -> dict[str, dict]:
    """Every loaded task, in order."""
    return {name: evaluate_task(lm, name, examples, shots, fixed_steps) for name, examples in loaded.items()}


def format_table(results: dict[str, dict]) -> str:
    """Our figure beside the paper's LLaMA sizes, one task a line (percent)."""
    head = f"{'task':<18}{'shots':>6}{'n':>8}  {'metric':<12}{'ours':>7}" + "".join(f"{s:>7}" for s in SIZES)
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        paper = r.get("paper")
        cells = "".join(f"{paper[s]:>7.1f}" for s in SIZES) if paper else "".join(f"{'-':>7}" for _ in SIZES)
        lines.append(f"{name:<18}{r['shots']:>6}{r['n']:>8}  {r['metric']:<12}{100 * r['accuracy']:>7.1f}{cells}")
    tables = sorted({r["paper"]["table"] for r in results.values() if r.get("paper")})
    lines.append("paper: LLaMA-1 (Touvron et al. 2023), " + (", ".join(f"Table {t}" for t in tables) or
                                                            "no published figure for these tasks and shots"))
    return "\n".join(lines)


def summary(results: dict[str, dict]) -> dict[str, dict]:
    """The results without per-example detail (what the in-loop metrics and reports keep)."""
    keep = ("accuracy", "n", "metric", "normalisation", "shots", "chance", "accuracy_unnormalised", "subject_mean")
    return {name: {k: r[k] for k in keep if k in r} for name, r in results.items()}

