"""`smallgiant plan`: the cost of the whole build before any of it runs, one line per stage.

Curation: each source's `disk` size in the manifest (the paper's Table 1 sizes, i.e. the curated text;
the raw input is larger) at a per-core rate. Scoring: the reference classifier and the perplexity filter
over CommonCrawl's documents. Tokenization and shards: tokenizer.plan's projection, from the shard
benchmark's figures instead of a sample. Training: GPU-hours from 6N + 12·L·d·T FLOPs per token
(train.metrics), the tokens, an MFU and the GPU's peak, or from a given tokens/s per GPU; then the paper's
energy and carbon estimate (train.energy). Every line names the figure it used, measured or assumed
(smallgiant/plan_figures.py).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

from smallgiant import plan_figures as fig
from tokenizer.manifest import Manifest
from tokenizer.plan import LLAMA_TOTAL, Prices, projection

PLAN_KIND = "smallgiant plan"
# name in train.metrics.PEAK_TFLOPS, board power (W) of the SXM part for the energy estimate
GPUS = {"a100-80gb": ("A100", 400.0), "h100": ("H100", 700.0), "h200": ("H200", 700.0)}
SCORED_SOURCE = "commoncrawl"              # the paper scores CommonCrawl alone (classifier, CCNet perplexity)
_UNITS = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15}


@dataclasses.dataclass
class TrainingOptions:
    model: str = "7b"
    gpu: str = "a100-80gb"
    gpus: int | None = None                  # None: the preset's cluster (train.config.PRESET_GPUS)
    tokens: int | None = None                # None: the manifest's total, else the preset's
    tokens_per_second_per_gpu: float | None = None
    mfu: float | None = None
    pue: float = 1.1
    kg_per_kwh: float = 0.385
    gpu_hour_usd: float | None = None


def disk_bytes(text: str | None) -> float | None:
    """'3.3 TB' -> 3.3e12 (decimal units); None for a missing or unreadable size."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?B)\s*", (text or "").upper())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def _core_usd(core_hours: float, prices: Prices) -> float:
    return core_hours * (prices.vcpu_hour + prices.gb_per_vcpu * prices.gb_hour)


def _line(stage: str, work: str, rate: str, hours: float | None, unit: str, usd: float | None,
          basis: str) -> dict[str, Any]:
    return {"stage": stage, "work": work, "throughput": rate, "hours": hours, "unit": unit,
            "usd": None if usd is None else round(usd, 2), "basis": basis}


def curation_lines(manifest: Manifest, prices: Prices) -> list[dict[str, Any]]:
    rate = fig.CC_JOB_BYTES_PER_CORE_S
    lines = []
    for s in manifest.sources:
        size = disk_bytes(s.disk)
        basis = rate.label() if s.name == SCORED_SOURCE else "assumed: the CC job's rate (this job not benchmarked)"
        if size is None:
            lines.append(_line(f"curate {s.name}", "no disk size in the manifest", "-", None, "core-hours",
                               None, "not priced: give the source a `disk` size"))
            continue
        hours = size / rate.value / 3600
        lines.append(_line(f"curate {s.name}", f"{size / 1e9:,.0f} GB (manifest disk size)",
                           f"{rate.value / 1e6:,.2f} MB/core-s", hours, "core-hours", _core_usd(hours, prices),
                           basis))
    return lines


def scoring_lines(manifest: Manifest, prices: Prices) -> list[dict[str, Any]]:
    spec = next((s for s in manifest.sources if s.name == SCORED_SOURCE), None)
    size = disk_bytes(spec.disk) if spec else None
    if size is None:
        return []
    docs = size / fig.BENCH_BYTES_PER_DOC.value
    lines = []
    for stage, rate in (("score: reference classifier", fig.REFERENCE_DOCS_PER_CORE_S),
                        ("score: perplexity (CCNet)", fig.PERPLEXITY_DOCS_PER_CORE_S)):
        hours = docs / rate.value / 3600
        lines.append(_line(stage, f"{docs / 1e6:,.0f} M {SCORED_SOURCE} documents", f"{rate.value:,.0f} docs/core-s",
                           hours, "core-hours", _core_usd(hours, prices),
                           f"{rate.label()}; assumed: documents of the bench's mean size"))
    return lines


def tokenization_line(manifest: Manifest, prices: Prices) -> tuple[dict[str, Any], dict[str, Any]]:
    """tokenizer.plan's projection, fed the shard benchmark's figures for every source."""
    measured = {"bytes_per_token": fig.BYTES_PER_TOKEN.value, "sample_documents": 1,
                "sample_tokens": fig.TOKENS_PER_DOC.value,
                "encode_tokens_per_second": fig.ENCODE_TOKENS_PER_CORE_S.value}
    total = manifest.total_tokens or LLAMA_TOTAL
    p = projection(manifest, {s.name: measured for s in manifest.sources}, total, manifest.shard_tokens, prices)
    line = _line("tokenize + shards", f"{p['unique_tokens'] / 1e9:,.0f} B unique tokens -> {p['shards']:,} shards",
                 f"{p['job_tokens_per_second_per_core']:,.0f} tokens/core-s", p["core_hours"], "core-hours",
                 p["dataflow_usd"]["total"],
                 f"{fig.ENCODE_TOKENS_PER_CORE_S.label()}, x the job's 85% share; assumed: the bench's "
                 f"{fig.BYTES_PER_TOKEN.value} bytes/token for every source")
    return line, p


def training(manifest: Manifest, opts: TrainingOptions) -> dict[str, Any]:
    from train.config import PRESET_GPUS, preset
    from train.energy import paper_estimate
    from train.metrics import PEAK_TFLOPS, flops_per_token
    from train.model import count_parameters
    if opts.gpu not in GPUS:
        raise ValueError(f"unknown GPU {opts.gpu!r}; known: {', '.join(GPUS)}")
    cfg = preset(opts.model)
    name, watts = GPUS[opts.gpu]
    peak = dict(PEAK_TFLOPS)[name] * 1e12
    params = count_parameters(cfg)
    fpt = flops_per_token(cfg, params)
    tokens = opts.tokens or manifest.total_tokens or cfg.train_tokens
    if opts.tokens_per_second_per_gpu:
        tps, basis = opts.tokens_per_second_per_gpu, f"given: {opts.tokens_per_second_per_gpu:g} tokens/s per GPU"
    else:
        mfu = opts.mfu or fig.TRAIN_MFU.value
        tps = mfu * peak / fpt
        basis = f"given: MFU {opts.mfu:g}" if opts.mfu else fig.TRAIN_MFU.label()
    gpu_hours = tokens / tps / 3600
    gpus = opts.gpus or PRESET_GPUS.get(cfg.name, 1)
    energy = paper_estimate(gpu_hours, watts, opts.pue, opts.kg_per_kwh)
    return {"model": cfg.name, "parameters": params, "flops_per_token": fpt, "tokens": tokens, "gpu": opts.gpu,
            "peak_tflops": peak / 1e12, "tokens_per_second_per_gpu": tps, "mfu": tps * fpt / peak,
            "gpu_hours": gpu_hours, "gpus": gpus, "days": gpu_hours / gpus / 24, "basis": basis,
            "usd": None if opts.gpu_hour_usd is None else round(gpu_hours * opts.gpu_hour_usd, 2),
            "energy": {**energy, "tdp_watts": watts, "pue": opts.pue, "kg_per_kwh": opts.kg_per_kwh}}


def make_plan(manifest: Manifest, opts: TrainingOptions, prices: Prices | None = None) -> dict[str, Any]:
    prices = prices or Prices()
    token_line, token_projection = tokenization_line(manifest, prices)
    t = training(manifest, opts)
    train_line = _line(f"train {t['model']}", f"{t['tokens'] / 1e12:,.2f} T tokens, {t['flops_per_token']:.3g} "
                       f"FLOPs/token", f"{t['tokens_per_second_per_gpu']:,.0f} tokens/s/GPU (MFU {t['mfu']:.1%} of "
                       f"{t['peak_tflops']:g} TFLOP/s)", t["gpu_hours"], "GPU-hours", t["usd"], t["basis"])
    lines = curation_lines(manifest, prices) + scoring_lines(manifest, prices) + [token_line, train_line]
    core = [ln for ln in lines if ln["unit"] == "core-hours" and ln["hours"] is not None]
    return {"kind": PLAN_KIND, "manifest": manifest.name, "figures_machine": fig.BENCH_MACHINE, "lines": lines,
            "training": t,
            "tokenization": token_projection, "prices": dataclasses.asdict(prices),
            "totals": {"core_hours": sum(ln["hours"] for ln in core),
                       "core_usd": round(sum(ln["usd"] for ln in core), 2), "gpu_hours": t["gpu_hours"],
                       "gpu_usd": t["usd"]}}


def format_plan(plan: dict[str, Any]) -> str:
    rows = [("stage", "work", "throughput", "hours", "$", "basis")]
    for ln in plan["lines"]:
        hours = "-" if ln["hours"] is None else f"{ln['hours']:,.0f} {ln['unit']}"
        usd = "-" if ln["usd"] is None else f"{ln['usd']:,.0f}"
        rows.append((ln["stage"], ln["work"], ln["throughput"], hours, usd, ln["basis"]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    out = ["  ".join(c.rjust(w) if i in (3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
           + "  " + r[5] for r in rows]
    t, e, tot = plan["training"], plan["training"]["energy"], plan["totals"]
    gpu_usd = "" if tot["gpu_usd"] is None else f", ${tot['gpu_usd']:,.0f}"
    out += [f"curation, scoring, tokenization: {tot['core_hours']:,.0f} core-hours, ${tot['core_usd']:,.0f} "
            f"(Dataflow prices {plan['prices']['vcpu_hour']:g} $/vCPU-hour + memory)",
            f"training {t['model']}: {t['gpu_hours']:,.0f} GPU-hours{gpu_usd} ({t['gpus']:,} x {t['gpu']}: "
            f"{t['days']:,.1f} days)",
            f"measured figures: benchmarks/RESULTS.md, {plan['figures_machine']}",
            f"energy (paper's formula): {e['kwh'] / 1000:,.0f} MWh, {e['kg_co2eq'] / 1000:,.0f} tCO2eq "
            f"(GPU-hours x {e['tdp_watts']:g} W x PUE {e['pue']:g}; {e['kg_per_kwh']:g} kgCO2eq/kWh)"]
    return "\n".join(out)


def write_json(path: str, plan: dict[str, Any]) -> None:
    """A new file, or one holding an earlier plan of this command: nothing else is overwritten."""
    from pipeline.runtime.guard import write_atomically
    if os.path.exists(path) and not _is_plan(path):
        raise ValueError(f"{path} exists and is not a plan JSON of `smallgiant plan`; not overwriting it")
    write_atomically(path, json.dumps(plan, indent=1).encode())


def _is_plan(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("kind") == PLAN_KIND
    except (OSError, ValueError, AttributeError):
        return False
