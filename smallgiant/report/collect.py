"""The demo report's figures: `collect` gathers what every stage wrote (stats.json of each curation job,
the classifier's report, the tokenizer's report, the shard dataset, the plan, the training metrics and
summary, the generation, the evaluation results, the stage stamps) into one dict, which is report.json."""
from __future__ import annotations

import json
import math
import os
from typing import Any

from smallgiant.stages import STAMPS

SECTIONS = (
    ("overview", "Overview"),
    ("funnel", "Curation funnel of every source"),
    ("languages", "Languages"),
    ("classifier", "Wikipedia-reference classifier"),
    ("tokenizer", "Tokenizer: bytes per token"),
    ("mixture", "Mixture: realised vs target"),
    ("training", "Training: loss curve and a sample"),
    ("throughput", "Throughput of each stage"),
    ("energy", "Energy and carbon"),
    ("plan", "What the whole build costs (smallgiant plan), and its tokenization projected (--plan)"),
)
# LLaMA-1's GPU-hours (paper, Table 15), to which the trainer's energy formula is applied
PAPER_GPU_HOURS = {"7B": 82_432, "13B": 135_168, "33B": 530_432, "65B": 1_022_362}
CURATION_DIRS = {"commoncrawl": "cc"}
RECENT = 10   # logged steps the "recent loss" averages: one step's loss depends on which sources its batch holds


def _load(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# -- collect ---------------------------------------------------------------------------------------------

def collect(root: str, sources: list[str], stage_order: list[str] | None = None) -> dict[str, Any]:
    """Everything the report shows, from the stage outputs under `root`; `sources` in mixture order, stages
    in `stage_order` (others after them, by name)."""
    return {
        "demo_dir": os.path.abspath(root),
        "funnel": _funnels(root, sources),
        "classifier": _classifier(_load(os.path.join(root, "refmodel", "report.json"))),
        "tokenizer": _tokenizer(_load(os.path.join(root, "tokenizer", "report.json"))),
        "mixture": _mixture(_load(os.path.join(root, "shards", "stats.json"))),
        "training": _training(root),
        "generation": _load(os.path.join(root, "generation.json")),
        "evaluation": _evaluation(_load(os.path.join(root, "eval", "results.json"))),
        "stages": _stages(root, stage_order),
        "energy": _energy(_load(os.path.join(root, "model", "summary.json"))),
        "plan": _plan(_load(os.path.join(root, "plan", "plan.json"))),
    }


def _funnels(root: str, sources: list[str]) -> dict[str, Any]:
    out = {}
    for name in sources:
        stats = _load(os.path.join(root, CURATION_DIRS.get(name, name), "stats.json"))
        if stats is None:
            continue
        out[name] = {"stages": [{k: row.get(k) for k in ("stage", "docs_in", "docs_out", "bytes_in", "bytes_out")}
                                for row in stats["stages"]],
                     "documents_in": stats["documents_in"], "documents_out": stats["documents_out"],
                     "bytes_out": stats["bytes_out"], "dead_letters": stats["dead_letters"],
                     "kept_languages": _kept_languages(stats), "lid_languages": _lid_languages(stats),
                     "wall_seconds": stats["wall_seconds"]}
        if out[name]["stages"] and out[name]["stages"][0].get("bytes_in") is None:
            out[name]["stages"][0]["bytes_in"] = None
    return out


def _kept_languages(stats: dict) -> dict[str, int] | None:
    """Documents kept per language: `kept_languages` where the job writes it; a source job's `languages`
    counts kept documents too; the CC job's counts every document that reached language ID (None)."""
    if "kept_languages" in stats:
        return stats["kept_languages"]
    return None if stats.get("job") == "cc" else stats.get("languages", {})


def _lid_languages(stats: dict) -> dict[str, int] | None:
    """The CC job's histogram of language ID: documents that reached it, kept or not, per language."""
    return stats.get("languages", {}) if stats.get("job") == "cc" else None


def _classifier(rep: dict | None) -> dict | None:
    if rep is None:
        return None
    return {"threshold": rep["threshold"], "threshold_rule": rep["threshold_rule"], "params": rep["params"],
            "test": rep["test"], "valid": rep["valid"], "split_sizes": rep["split_sizes"],
            "curve": rep["keep_rate_curve"]}


def _tokenizer(rep: dict | None) -> dict | None:
    if rep is None:
        return None
    return {"vocab_size": rep["vocab_size"], "all": rep["held_out"]["all"], "sources": rep["held_out"]["sources"],
            "languages": rep["held_out"]["languages"], "training_bytes": rep["training_text"]["bytes"],
            "seconds": rep["seconds"]}


def _mixture(stats: dict | None) -> dict | None:
    if stats is None:
        return None
    keys = ("target_share", "share", "target_epochs", "epochs", "tokens", "documents", "max_shard_share_deviation")
    return {"sources": {n: {k: m[k] for k in keys} for n, m in stats["mixture"].items()},
            "num_tokens": stats["num_tokens"], "shards": stats["shards"], "shard_tokens": stats["shard_tokens"],
            "bytes_per_token": stats["bytes_per_token"], "tokens_per_second": stats["tokens_per_second"]}


def _training(root: str) -> dict | None:
    summary = _load(os.path.join(root, "model", "summary.json"))
    config = _load(os.path.join(root, "model", "config.json"))
    if summary is None or config is None:
        return None
    steps = [r for r in _jsonl(os.path.join(root, "model", "metrics.jsonl")) if r.get("kind") == "step"]
    curve = [{"step": r["step"], "loss": r["loss"], "tokens_per_s": r["tokens_per_s"]} for r in steps]
    val = [r for r in _jsonl(os.path.join(root, "model", "metrics.jsonl")) if r.get("kind") == "val"]
    val_curves = {source: [{"step": r["step"], "loss": r["loss"][source]} for r in val if source in r["loss"]]
                  for source in sorted({s for r in val for s in r["loss"]})}
    return {"config": config["name"], "parameters": summary["parameters"], "steps": summary["steps"],
            "tokens": summary["tokens"], "vocab_size": config["vocab_size"], "seq_len": config["seq_len"],
            "dim": config["dim"], "n_layers": config["n_layers"], "lr": config["lr"],
            "uniform_loss": math.log(config["vocab_size"]), "first_loss": curve[0]["loss"] if curve else None,
            "recent_loss": _mean([p["loss"] for p in curve[-RECENT:]]), "recent_steps": len(curve[-RECENT:]),
            "final_loss": summary["final_loss"], "train_seconds": summary["train_seconds"],
            "tokens_per_second": summary["tokens"] / summary["train_seconds"] if summary["train_seconds"] else None,
            "curve": curve, "val_curves": val_curves}


def _evaluation(results: dict | None) -> dict | None:
    """The demo model's benchmark results (train/evaluation), without per-example detail."""
    if results is None:
        return None
    keep = ("accuracy", "accuracy_unnormalised", "chance", "n", "metric", "normalisation", "shots", "seconds")
    return {"checkpoint_step": results["model"].get("step"),
            "tasks": {name: {k: r.get(k) for k in keep} for name, r in results["tasks"].items()}}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _stages(root: str, order: list[str] | None) -> list[dict]:
    out = []
    directory = os.path.join(root, STAMPS)
    if not os.path.isdir(directory):
        return out
    stamps = [_load(os.path.join(directory, f)) for f in os.listdir(directory) if f.endswith(".json")]
    rank = {name: i for i, name in enumerate(order or [])}
    for s in sorted((s for s in stamps if s), key=lambda s: (rank.get(s["stage"], len(rank)), s["stage"])):
        fig = s.get("figures", {})
        items, seconds = fig.get("items"), s["seconds"]
        out.append({"stage": s["stage"], "title": s["title"], "seconds": seconds, "items": items,
                    "unit": fig.get("unit"), "per_second": round(items / seconds, 1) if items and seconds else None})
    return out


def _energy(summary: dict | None) -> dict:
    from train.energy import paper_estimate
    tdp, pue, kg = 400.0, 1.1, 0.385
    run = None
    if summary is not None:
        run = {k: summary.get(k) for k in ("device", "gpu_hours", "estimated_kwh", "estimated_kg_co2eq",
                                          "measured_kwh", "measured_kg_co2eq", "energy_basis", "train_seconds")}
    paper = {m: paper_estimate(h, tdp, pue, kg) for m, h in PAPER_GPU_HOURS.items()}
    return {"run": run, "paper": paper, "basis": f"GPU-hours x {tdp:g} W x PUE {pue:g}; {kg:g} kgCO2eq/kWh"}


def _plan(plan: dict | None) -> dict | None:
    if plan is None:
        return None
    keys = ("total_tokens", "unique_tokens", "text_bytes", "shards", "output_bytes", "core_hours",
            "job_tokens_per_second_per_core", "shuffle_gb", "dataflow_usd")
    return {"build": {k: plan["build"][k] for k in keys}, "full_build": {k: plan["full_build"][k] for k in keys},
            "sources": {n: {k: s[k] for k in ("files", "documents", "text_bytes", "bytes_per_token",
                                              "available_tokens", "budget_tokens", "target_epochs", "epochs")}
                        for n, s in plan["sources"].items()},
            "full_sources": plan["full_build"]["sources"], "whole_build": _whole_build(plan.get("whole_build"))}


def _whole_build(plan: dict | None) -> dict | None:
    """`smallgiant plan` on LLaMA-1's manifest: every stage of the recipe, training included."""
    if plan is None:
        return None
    t = plan["training"]
    return {"lines": [{k: ln[k] for k in ("stage", "work", "throughput", "hours", "unit", "usd", "basis")}
                      for ln in plan["lines"]],
            "totals": plan["totals"], "model": t["model"], "gpu": t["gpu"], "gpus": t["gpus"], "days": t["days"],
            "mwh": t["energy"]["kwh"] / 1e3, "tco2eq": t["energy"]["kg_co2eq"] / 1e3}


# -- plots -----------------------------------------------------------------------------------------------
