#!/usr/bin/env python3
"""Benchmark of the shard job: tokens per second per core of `tokenizer shards` versus bare SentencePiece
encoding of the same documents in a loop (the job should keep >= 85% of it), and bytes per token.

    python benchmarks/shards.py WET_FILE [--tokenizer DIR] [--work DIR] [--workers N] [--max-docs N]
        [--copies N]

The WET file's records become one source of documents (Parquet in the document schema, 8 files; with
--copies N, N copies of each under other ids, so that the job's fixed cost, starting the local runner's
workers and its stages, weighs as it does on a larger corpus). Without --tokenizer, a 32k SentencePiece
BPE with LLaMA-1's settings is trained on a 20 MB sample first (its time is printed). Bare encoding runs
in this process on one core, over the WET file's documents once, before the job and again after it: the
share is given against the faster of the two (the machine's speed drifts) and against their mean. The job
runs on Beam's local runner with --workers worker processes (default 1, so both figures are per core).

On a machine shared with other work the wall-clock figures move with the load, which is printed beside
each (the 1-minute load average, sampled before the measurement). The CPU-time figures (bare encoding's own
CPU seconds; the job's, its worker processes included) say how much work the job adds whatever the load.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import sentencepiece as spm  # noqa: E402

from pipeline.argtypes import positive_int  # noqa: E402
from pipeline.records import to_document  # noqa: E402
from pipeline.schema import DOC_SCHEMA, Document  # noqa: E402
from pipeline.warc import read_warc  # noqa: E402
from tokenizer.manifest import load_manifest  # noqa: E402
from tokenizer.shard_work import BATCH  # noqa: E402
from tokenizer.shards import ShardConfig, run  # noqa: E402
from tokenizer.train import LLAMA_SETTINGS  # noqa: E402


def read_documents(path: str, limit: int | None) -> list[Document]:
    import gzip
    docs = []
    with gzip.open(path, "rb") as f:
        for rec in read_warc(f, path, 8 << 20):
            doc = None if not hasattr(rec, "block") else to_document(rec, path)
            if isinstance(doc, Document) and doc.text:
                docs.append(doc)
                if limit and len(docs) >= limit:
                    break
    return docs


def write_parquet(docs: list[Document], directory: str, n_files: int = 8, copies: int = 1) -> None:
    os.makedirs(directory, exist_ok=True)
    for c in range(copies):
        for i in range(n_files):
            part = [{**d.to_row(), "id": d.id if c == 0 else f"{d.id}#{c}"} for d in docs[i::n_files]]
            pq.write_table(pa.Table.from_pylist(part, schema=DOC_SCHEMA),
                           os.path.join(directory, f"part-{c:02d}-{i:05d}.parquet"))


def train_tokenizer(docs: list[Document], directory: str) -> float:
    os.makedirs(directory, exist_ok=True)
    lines, size = [], 0
    for d in docs:
        for line in d.text.split("\n"):
            if line.strip():
                lines.append(line[:LLAMA_SETTINGS.get("max_sentence_length", 16384)])
                size += len(line)
        if size > 20e6:
            break
    t0 = time.time()
    settings = {k: v for k, v in LLAMA_SETTINGS.items()}
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=os.path.join(directory, "tokenizer"),
                                   vocab_size=32000, num_threads=os.cpu_count(), minloglevel=2, **settings)
    return time.time() - t0


def cpu_seconds() -> float:
    """User and system CPU time of this process and of its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def bare_encode(docs: list[Document], model: str, batch: int) -> tuple[int, float, float]:
    """SentencePiece alone, one thread: one call per document (batch 1) or per `batch` documents;
    (tokens, wall seconds, CPU seconds)."""
    sp = spm.SentencePieceProcessor(model_file=model)
    texts = [d.text for d in docs]
    t0, c0 = time.perf_counter(), time.process_time()
    tokens = 0
    if batch == 1:
        for t in texts:
            tokens += len(sp.encode(t)) + 1
    else:
        for i in range(0, len(texts), batch):
            tokens += sum(len(ids) + 1 for ids in sp.encode(texts[i:i + batch], num_threads=1))
    return tokens, time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wet")
    ap.add_argument("--tokenizer")
    ap.add_argument("--work", default="/tmp/shards_bench")
    ap.add_argument("--workers", type=positive_int, default=1)
    ap.add_argument("--max-docs", type=positive_int)
    ap.add_argument("--copies", type=positive_int, default=1)
    args = ap.parse_args()
    docs = read_documents(args.wet, args.max_docs)
    text_bytes = sum(len(d.text.encode("utf-8", "surrogatepass")) for d in docs)
    docs_dir = f"docs-x{args.copies}"    # the same names on every run with these copies: rewritten, never removed
    write_parquet(docs, os.path.join(args.work, docs_dir), copies=args.copies)
    print(f"{len(docs):,} documents, {text_bytes / 1e6:.1f} MB of text; the job reads {args.copies} "
          f"cop{'y' if args.copies == 1 else 'ies'}")
    tok = args.tokenizer
    if not tok:
        tok = os.path.join(args.work, "tokenizer")
        print(f"SentencePiece BPE 32k, LLaMA settings, 20 MB sample, {os.cpu_count()} threads: "
              f"trained in {train_tokenizer(docs, tok):.1f} s")
    model = os.path.join(tok, "tokenizer.model")
    rates, cpu_rates = bare_figures(docs, model, text_bytes, "before the job")
    manifest = os.path.join(args.work, "bench.yaml")
    with open(manifest, "w") as f:
        f.write("name: bench\nshard_tokens: 16777216\nsources:\n"
                f"  commoncrawl: {{share: 1.0, epochs: 1.0, paths: ['{docs_dir}/*.parquet']}}\n")
    cfg = ShardConfig(load_manifest(manifest), tok, os.path.join(args.work, "out"))
    beam_args = [f"--direct_num_workers={args.workers}",
                 f"--direct_running_mode={'multi_processing' if args.workers > 1 else 'in_memory'}"]
    before, c0 = load(), cpu_seconds()
    summary = run(cfg, beam_args)
    cpu = cpu_seconds() - c0
    after_rates, after_cpu = bare_figures(docs, model, text_bytes, "after the job")
    fastest = {b: max(rates[b], after_rates[b]) for b in rates}
    mean = {b: (rates[b] + after_rates[b]) / 2 for b in rates}
    bare, bare_mean = max(fastest.values()), max(mean.values())
    bare_cpu = max(max(cpu_rates.values()), max(after_cpu.values()))
    per_core = summary["tokens_encoded"] / summary["wall_seconds"] / args.workers
    per_cpu = summary["tokens_encoded"] / cpu
    print(f"shard job ({args.workers} worker{'s' if args.workers > 1 else ''}, {before}): {summary['tokens_encoded']:,} "
          f"tokens in {summary['wall_seconds']:.1f} s = {per_core:,.0f} tokens/s per core = {per_core / bare:.1%} of the "
          f"fastest bare encoding, {per_core / bare_mean:.1%} of the better mean of the two; {summary['shards']} shards")
    print(f"shard job CPU time (workers included): {cpu:.1f} s = {per_cpu:,.0f} tokens per CPU second = "
          f"{per_cpu / bare_cpu:.1%} of the fastest bare encoding's")
    return 0


def bare_figures(docs: list[Document], model: str, text_bytes: int, when: str) -> tuple[dict, dict]:
    """Bare encoding's tokens/s and tokens per CPU second, one call per document and batched."""
    rates, cpu_rates = {}, {}
    for batch in (1, BATCH):
        before = load()
        tokens, seconds, cpu = bare_encode(docs, model, batch)
        rates[batch], cpu_rates[batch] = tokens / seconds, tokens / cpu
        print(f"bare SentencePiece encode {when}, "
              f"{'one document per call' if batch == 1 else f'{batch} documents per call'} (1 core, {before}): "
              f"{tokens:,} tokens in {seconds:.1f} s = {rates[batch]:,.0f} tokens/s ({cpu_rates[batch]:,.0f} per CPU "
              f"second), {text_bytes / tokens:.3f} bytes/token")
    return rates, cpu_rates


if __name__ == "__main__":
    sys.exit(main())
