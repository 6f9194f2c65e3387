"""`shards --plan`: what a shard build will produce and cost, before tokenizing everything.

For every source it reads only Parquet footers (the text column's uncompressed size: the source's text
bytes) and encodes a small sample of documents (tokens per byte, and the bare encoding speed of this
machine). From those: the tokens each source has, the budget and epochs the manifest asks of it, shards
and bytes, and a projection of the full build (the manifest's total, 1.4T tokens for LLaMA-1) in
core-hours and Dataflow cost. Prices are options; the defaults are Dataflow batch list prices
(us-central1) and n1-standard workers' 3.75 GB per vCPU.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from tokenizer import mixture
from tokenizer.manifest import DEFAULT_SHARD_TOKENS, Manifest
from tokenizer.shard_format import token_dtype

LLAMA_TOTAL = 1_400_000_000_000
# share of bare SentencePiece speed the shard job keeps (benchmarks/shards.py; see benchmarks/RESULTS.md)
JOB_EFFICIENCY = 0.85
INDEX_BYTES_PER_DOC = 8


@dataclasses.dataclass
class Prices:
    vcpu_hour: float = 0.056
    gb_hour: float = 0.003557
    gb_per_vcpu: float = 3.75
    shuffle_gb: float = 0.011


def _footer_text_bytes(path: str) -> tuple[int, int]:
    """(uncompressed bytes of the text column, rows) from a Parquet file's footer alone."""
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(path) as f:
        meta = pq.ParquetFile(f).metadata
    col = meta.schema.names.index("text")
    size = sum(meta.row_group(i).column(col).total_uncompressed_size for i in range(meta.num_row_groups))
    return size, meta.num_rows


def _sample(paths: list[str], n_docs: int) -> list[str]:
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems
    texts: list[str] = []
    for path in paths:
        with FileSystems.open(path) as f:
            for batch in pq.ParquetFile(f).iter_batches(columns=["text"], batch_size=256):
                texts += [t for t in batch.column("text").to_pylist() if t]
                if len(texts) >= n_docs:
                    return texts[:n_docs]
    return texts


def measure_source(sp, paths: list[str], n_docs: int) -> dict[str, Any]:
    footers = [_footer_text_bytes(p) for p in paths]
    texts = _sample(paths, n_docs)
    t0 = time.perf_counter()
    tokens = sum(len(ids) + 1 for ids in sp.encode(texts))
    seconds = time.perf_counter() - t0
    text_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    return {"files": len(paths), "documents": sum(n for _, n in footers),
            "text_bytes": sum(s for s, _ in footers), "sample_documents": len(texts),
            "sample_bytes": text_bytes, "sample_tokens": tokens,
            "bytes_per_token": text_bytes / tokens if tokens else None,
            "encode_tokens_per_second": tokens / seconds if seconds > 0 else None}


def projection(manifest: Manifest, measured: dict[str, dict], total: int, shard_tokens: int,
               prices: Prices, token_bytes: int = 2) -> dict[str, Any]:
    """The cost of building `total` tokens in the manifest's shares and target epochs."""
    rows, unique_tokens, text_bytes, docs = {}, 0.0, 0.0, 0.0
    for s in manifest.sources:
        m = measured[s.name]
        budget = s.share * total
        unique = budget / s.epochs
        bpt = m["bytes_per_token"] or 0.0
        tokens_per_doc = m["sample_tokens"] / m["sample_documents"] if m["sample_documents"] else 0.0
        rows[s.name] = {"budget_tokens": int(budget), "unique_tokens": int(unique), "epochs": s.epochs,
                        "text_bytes": int(unique * bpt)}
        unique_tokens += unique
        text_bytes += unique * bpt
        docs += budget / tokens_per_doc if tokens_per_doc else 0.0
    speeds = [m["encode_tokens_per_second"] for m in measured.values() if m["encode_tokens_per_second"]]
    speed = (sum(speeds) / len(speeds)) * JOB_EFFICIENCY if speeds else 0.0
    core_hours = unique_tokens / speed / 3600 if speed else float("nan")
    shuffle_gb = (text_bytes + 2 * token_bytes * total) / 1e9      # documents once, tokens through two shuffles
    cost = {"vcpu": core_hours * prices.vcpu_hour, "memory": core_hours * prices.gb_per_vcpu * prices.gb_hour,
            "shuffle": shuffle_gb * prices.shuffle_gb}
    cost["total"] = sum(cost.values())
    return {"total_tokens": total, "sources": rows, "unique_tokens": int(unique_tokens),
            "text_bytes": int(text_bytes), "shards": math.ceil(total / shard_tokens),
            "output_bytes": int(token_bytes * total + INDEX_BYTES_PER_DOC * docs),
            "job_tokens_per_second_per_core": round(speed, 1), "core_hours": round(core_hours, 1),
            "shuffle_gb": round(shuffle_gb, 1), "dataflow_usd": {k: round(v, 2) for k, v in cost.items()},
            "prices": dataclasses.asdict(prices)}


def make_plan(manifest: Manifest, tokenizer_dir: str, sample_docs: int = 200, total_tokens: int | None = None,
              shard_tokens: int | None = None, prices: Prices | None = None) -> dict[str, Any]:
    from tokenizer.shards import load_tokenizer
    sp, _ = load_tokenizer(tokenizer_dir)
    token_bytes = token_dtype(sp.get_piece_size()).itemsize
    measured = {s.name: measure_source(sp, manifest.files(s.name), sample_docs) for s in manifest.sources}
    available = {name: int(m["text_bytes"] / m["bytes_per_token"]) if m["bytes_per_token"] else 0
                 for name, m in measured.items()}
    sources = [(s.name, s.share, s.epochs) for s in manifest.sources]
    total = total_tokens or manifest.total_tokens or mixture.derived_total(sources, available)
    shard_tokens = shard_tokens or manifest.shard_tokens
    # a manifest without a total is a scaled-down one: its full build writes full-size shards
    full_shard_tokens = shard_tokens if manifest.total_tokens else max(shard_tokens, DEFAULT_SHARD_TOKENS)
    this = {s.name: {**measured[s.name], "available_tokens": available[s.name],
                     "budget_tokens": int(s.share * total), "target_epochs": s.epochs,
                     "epochs": s.share * total / available[s.name] if available[s.name] else None}
            for s in manifest.sources}
    return {"manifest": manifest.name, "total_tokens": total, "shards": math.ceil(total / shard_tokens),
            "output_bytes": token_bytes * total, "sources": this,
            "build": projection(manifest, measured, total, shard_tokens, prices or Prices(), token_bytes),
            "full_build": projection(manifest, measured, manifest.total_tokens or LLAMA_TOTAL, full_shard_tokens,
                                     prices or Prices(), token_bytes)}


def format_plan(plan: dict[str, Any]) -> str:
    lines = [f"{'source':<15}{'files':>7}{'text GB':>10}{'B/token':>9}{'tokens':>16}{'budget':>16}"
             f"{'epochs':>8}{'target':>8}"]
    for name, s in plan["sources"].items():
        epochs = f"{s['epochs']:.2f}" if s["epochs"] is not None else "-"
        lines.append(f"{name:<15}{s['files']:>7,}{s['text_bytes'] / 1e9:>10.3f}{s['bytes_per_token'] or 0:>9.2f}"
                     f"{s['available_tokens']:>16,}{s['budget_tokens']:>16,}{epochs:>8}{s['target_epochs']:>8.2f}")
    lines.append(f"this build: {plan['total_tokens']:,} tokens in {plan['shards']:,} shards, "
                 f"{plan['output_bytes'] / 1e9:,.2f} GB of tokens")
    for label, key in (("this build", "build"), ("full build", "full_build")):
        b = plan[key]
        lines.append(f"{label} ({b['total_tokens']:,} tokens): encode {b['unique_tokens']:,} unique tokens "
                     f"({b['text_bytes'] / 1e12:,.3f} TB of text) at {b['job_tokens_per_second_per_core']:,.0f} "
                     f"tokens/s per core = {b['core_hours']:,.1f} core-hours; {b['shards']:,} shards, "
                     f"{b['output_bytes'] / 1e12:,.3f} TB out; shuffle {b['shuffle_gb']:,.0f} GB; "
                     f"Dataflow ~${b['dataflow_usd']['total']:,.2f}")
    return "\n".join(lines)
