#!/usr/bin/env python3
"""Benchmark of tokenizer training: SentencePiece BPE training time at LLaMA's settings and bytes per
token on held-out text, on a WET corpus.

    python benchmarks/tokenizer_train.py --corpus ../shared/bench/bench.warc.wet.gz [--vocab-size 32000]
        [--threads N] [--held-out-share 0.1] [--work DIR]

The WET records become documents (pipeline.warc / pipeline.records), exact duplicate texts are dropped,
each document gets its language from fastText lid.176 (pipeline.langid), and the documents are written as
Parquet in the document schema under one source, `commoncrawl`, of a one-source manifest. Then the real
`train_tokenizer` runs on them: a hash of each document id holds out `--held-out-share` of the documents,
every other document is in the training sample. Printed: the sample's size, SentencePiece's training time
(the trainer call alone, then the whole command), and bytes per token overall and per language on the
held-out documents, beside the figures measured for other tokenizers on the same corpus.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Bytes per token on the held-out 10% of the bench corpus (shared/bench/PEERS.md): LLaMA-1's own tokenizer,
# and a 32k SentencePiece BPE trained there on 50 MB of the other 90% (unique, non-junk documents).
PEERS = {"LLaMA-1": 3.61, "SP 32k (PEERS.md)": 4.11}
PARQUET_DOCS = 5_000


def read_documents(corpus: str):
    """Documents of a WET/WARC file with their fastText language; exact duplicate texts dropped."""
    from pipeline.langid import LanguageIdentifier, default_lid_model
    from pipeline.records import to_document
    from pipeline.schema import DeadLetter, Document
    from pipeline.warc import read_warc
    lid = LanguageIdentifier(default_lid_model())
    seen, docs, dropped = set(), [], {"dead": 0, "duplicate": 0}
    with open(corpus, "rb") as f:
        for item in read_warc(f, corpus):
            doc = item if isinstance(item, DeadLetter) else to_document(item, corpus)
            if doc is None:
                continue
            if not isinstance(doc, Document):
                dropped["dead"] += 1
                continue
            key = hashlib.blake2b(doc.text.encode(), digest_size=16).digest()
            if key in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(key)
            doc.metadata["language"] = lid.predict(doc.text)[0]
            docs.append(doc)
    return docs, dropped


def write_source(docs, directory: str) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.schema import DOC_SCHEMA
    os.makedirs(os.path.join(directory, "cc"), exist_ok=True)
    for i in range(0, len(docs), PARQUET_DOCS):
        table = pa.Table.from_pylist([d.to_row() for d in docs[i:i + PARQUET_DOCS]], schema=DOC_SCHEMA)
        pq.write_table(table, os.path.join(directory, "cc", f"part-{i // PARQUET_DOCS:05d}.parquet"))
    manifest = os.path.join(directory, "bench.yaml")
    with open(manifest, "w") as f:
        f.write("name: bench\nsources:\n  commoncrawl: {share: 1.0, epochs: 1.0, paths: [cc/*.parquet]}\n")
    return manifest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="a WET (or WARC) file")
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--held-out-share", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="working directory (default: a temporary one, removed at the end)")
    args = ap.parse_args()

    from tokenizer.manifest import load_manifest
    from tokenizer.report import format_table
    from tokenizer.train import train_tokenizer

    with tempfile.TemporaryDirectory(prefix="tokenizer-bench-") as tmp:
        work = args.work or tmp
        t0 = time.time()
        docs, dropped = read_documents(args.corpus)
        manifest = load_manifest(write_source(docs, work))
        print(f"corpus: {len(docs):,} documents ({dropped['duplicate']:,} exact duplicates and {dropped['dead']:,} "
              f"unreadable records dropped), {sum(len(d.text.encode()) for d in docs) / 1e6:.1f} MB, read and "
              f"language-identified in {time.time() - t0:.1f} s")
        t1 = time.time()
        report = train_tokenizer(manifest, os.path.join(work, "tokenizer"), vocab_size=args.vocab_size,
                                 sample_docs=len(docs), seed=args.seed, held_out_docs=len(docs),
                                 held_out_share=args.held_out_share, threads=args.threads)
        wall = time.time() - t1
    src, text, secs = report["sample"]["commoncrawl"], report["training_text"], report["seconds"]
    print(f"training sample: {src['used_documents']:,} documents, {text['lines']:,} lines, "
          f"{text['bytes'] / 1e6:.1f} MB; held out: {src['held_out_documents']:,} documents "
          f"({args.held_out_share:.0%} by a hash of the id)")
    print(f"SentencePiece BPE training, vocabulary {report['vocab_size']:,}, {args.threads} thread(s): "
          f"{secs['training']:.2f} s ({text['bytes'] / 1e6 / secs['training']:.2f} MB/s); whole command "
          f"{wall:.1f} s (sampling {secs['sampling']:.1f} s, the rest Hugging Face check and report)")
    print("bytes per token on the held-out documents:")
    print(format_table(report["held_out"]))
    ours = report["held_out"]["all"]["bytes_per_token"]
    print("compared: " + ", ".join(f"{name} {bpt:.2f}" for name, bpt in PEERS.items()) + f", this one {ours:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
