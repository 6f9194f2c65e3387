"""The shard job (Apache Beam): the curated documents of every source of a manifest -> token shards in the
manifest's mixture (`tokenizer.shard_format`), globally shuffled with the manifest's seed.

Documents and tokens never ride a shuffle: a first pass encodes each row group of each source file once
(one SentencePiece processor per worker, EOS appended) into a token file and an index of document ids
and lengths in a work area under the output's staging (`tokenizer.shard_work`). Every later step reads
those indexes and moves only references (unit, offset, length):

  indexes -> tokens per source, as sparse histograms by subsample hash -> the plan (`tokenizer.mixture`)
  -> every copy of every document with its position p, batched per row group and range bucket of p ->
  each bucket sorted -> global offsets from the buckets' sizes -> pieces cut at shard boundaries -> one
  writer per shard, which reads its pieces from the token files (file by file, in file order).

No step holds more than one row group, one bucket's references or one shard's tokens; nothing depends on
the runner's bundling, so the same inputs and seed give the same bytes on any number of workers.

Before the histograms, a validation split is set aside: each document whose hash (of source and id alone,
so the split survives a change of the shuffle seed) falls below `val_share` is a candidate, and the
`val_docs` candidates of each source with the lowest hashes are held out (the others go back to training).
Held-out documents never enter the mixture; each source's are written, in hash order, as a token dataset
of the same format in `val/<source>/` (the trainer's validation loss reads them).
"""
from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import logging
import time
from typing import Any

import apache_beam as beam
import numpy as np

from pipeline.model_files import ModelFile
from pipeline.runtime import output
from pipeline.runtime.counters import inc, timed
from pipeline.runtime.funnel import counters_of
from pipeline.runtime.guard import (DEFAULT_MAX_LEASE_AGE_HOURS, claim_output, delete_files, files_under,
                                    write_atomically)
from pipeline.runtime.runner import local_cores, make_pipeline, pipeline_options
from tokenizer import mixture, shard_format
from tokenizer.shard_work import EncodeRowGroup, RowGroups, TokenReader, read_index
from tokenizer.manifest import Manifest
from tokenizer.shards_report import format_summary, job_summary, mixture_report

TOKENIZER_FILE = "tokenizer.model"
PLAN_FILE = "plan.json"
STATS = "stats.json"
VAL_DIR = "val"
WORK_DIR = "work"                # under the staging directory: the first pass's token files
OWNED = ["shard-*", "dataset.json", STATS, PLAN_FILE, VAL_DIR]
log = logging.getLogger(__name__)


@dataclasses.dataclass
class ShardConfig:
    manifest: Manifest
    tokenizer: str                   # a directory holding tokenizer.model
    output: str
    total_tokens: int | None = None  # overrides the manifest's
    shard_tokens: int | None = None  # overrides the manifest's
    bucket_tokens: int | None = None  # tokens per sort bucket (default: shard_tokens)
    seed: int | None = None          # overrides the manifest's
    val_share: float = 0.0           # share of each source's documents that may be held out for validation
    val_docs: int = 1000             # at most this many held-out documents per source

    @property
    def the_seed(self) -> int:
        return self.manifest.seed if self.seed is None else self.seed

    @property
    def the_shard_tokens(self) -> int:
        return self.shard_tokens or self.manifest.shard_tokens

    @property
    def the_total(self) -> int | None:
        return self.total_tokens if self.total_tokens is not None else self.manifest.total_tokens


def tokenizer_model(directory: str) -> str:
    return output.join(directory, TOKENIZER_FILE)


def load_tokenizer(directory: str):
    """(SentencePiece processor, SHA-256 of tokenizer.model) from a directory on any Beam filesystem."""
    import sentencepiece as spm
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(tokenizer_model(directory)) as f:
        proto = f.read()
    return spm.SentencePieceProcessor(model_proto=proto), hashlib.sha256(proto).hexdigest()


Unit = tuple[str, str]          # (source, base path of a token file and its index in the work area)


def val_key(source: str, doc_id: str) -> float:
    """The document's place in the validation order (below val_share: a candidate)."""
    return mixture.unit(0, "validation", source, doc_id)


def _held_out(source: str, ids: list[str], limits: dict) -> list[bool]:
    """Per document of a unit: is it held out for validation (at or below its source's limit)?"""
    limit = limits.get(source)
    if limit is None:
        return [False] * len(ids)
    return [(val_key(source, doc_id), doc_id) <= limit for doc_id in ids]


def _unit_candidates(unit: Unit, share: float):
    """(source, (validation key, id)) of each of a unit's documents whose key falls below `share`."""
    source = unit[0]
    for doc_id in read_index(unit).ids:
        key = val_key(source, doc_id)
        if key < share:
            yield source, (key, doc_id)


def _unit_held_out(unit: Unit, limits: dict):
    """(source, [(validation key, id, base, offset, length)]) of a unit's held-out documents, if any."""
    source, base = unit
    index = read_index(unit)
    held = [(val_key(source, doc_id), doc_id, base, int(offset), int(n))
            for doc_id, offset, n, out in zip(index.ids, index.offsets, index.lengths,
                                               _held_out(source, index.ids, limits)) if out]
    if held:
        yield source, held


class SourceHistograms(beam.CombineFn):
    """Units' sparse histograms -> {source: (tokens by subsample bucket, number of documents)}."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, item):
        source, (buckets, tokens, docs) = item
        hist, n = acc.get(source) or (np.zeros(mixture.HIST_BUCKETS, dtype=np.int64), 0)
        hist[buckets] += tokens     # buckets are unique within an item
        acc[source] = hist, n + docs
        return acc

    def merge_accumulators(self, accs):
        merged: dict = {}
        for acc in accs:
            for source, (hist, n) in acc.items():
                if source in merged:
                    merged[source] = merged[source][0] + hist, merged[source][1] + n
                else:
                    merged[source] = hist, n
        return merged

    def extract_output(self, acc):
        return acc


def _unit_histogram(unit: Unit, limits: dict, seed: int):
    """(source, (buckets, tokens in each, training documents)) of a unit: its sparse token histogram."""
    source = unit[0]
    index = read_index(unit)
    train = ~np.array(_held_out(source, index.ids, limits), dtype=bool)
    buckets = np.array([mixture.doc_bucket(seed, source, d) for d, t in zip(index.ids, train) if t], dtype=np.int64)
    present, where = np.unique(buckets, return_inverse=True)
    tokens = np.zeros(len(present), dtype=np.int64)
    np.add.at(tokens, where, index.lengths[train])
    return source, (present, tokens, int(train.sum()))


def _make_plan(hists: dict, cfg_sources, total: int | None, shard_tokens: int, bucket_tokens: int,
               path: str) -> dict:
    """The plan from every source's histogram, also saved as JSON at `path`."""
    plans = mixture.make_plan(cfg_sources, {k: v[0] for k, v in hists.items()},
                              {k: v[1] for k, v in hists.items()}, total)
    planned = sum(p.planned_tokens for p in plans.values())
    plan = {"sources": plans, "planned_tokens": planned,
            "buckets": mixture.n_buckets(planned, bucket_tokens), "shard_tokens": shard_tokens}
    _write_json(path, plan)
    return plan


class BucketStarts(beam.CombineFn):
    """(bucket, tokens) of batches of copies -> where each bucket starts in the output stream: the tokens
    of all buckets before it."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, item):
        bucket, tokens = item
        acc[bucket] = acc.get(bucket, 0) + tokens
        return acc

    def merge_accumulators(self, accs):
        merged: dict[int, int] = {}
        for acc in accs:
            for bucket, tokens in acc.items():
                merged[bucket] = merged.get(bucket, 0) + tokens
        return merged

    def extract_output(self, acc):
        starts, total = {}, 0
        for bucket in sorted(acc):
            starts[bucket], total = total, total + acc[bucket]
        return starts


def _unit_copies(unit: Unit, plan: dict, limits: dict, seed: int):
    """(bucket, (source, base, [(p, id, repetition, offset, length)])): a unit's training documents'
    copies, one batch per sort bucket they land in."""
    source, base = unit
    source_plan = plan["sources"][source]
    index = read_index(unit)
    by_bucket: dict[int, list] = {}
    for doc_id, offset, n, out in zip(index.ids, index.offsets.tolist(), index.lengths.tolist(),
                                      _held_out(source, index.ids, limits)):
        if out:
            continue
        for r, p in source_plan.copies(seed, doc_id):
            # plain floats: the runner's coder pickles NumPy scalars one by one
            by_bucket.setdefault(mixture.bucket_of(p, plan["buckets"]), []).append((float(p), doc_id, r, offset, n))
    for bucket in sorted(by_bucket):
        yield bucket, (source, base, by_bucket[bucket])


def _batch_tokens(item) -> tuple[int, int]:
    bucket, (_, _, copies) = item
    return bucket, sum(c[4] for c in copies)


class CutBucket(beam.DoFn):
    """A bucket's batches of copies -> (shard, [(offset in shard, starts a document, source, base, offset
    in the token file, length)]) per shard the bucket's copies, sorted by position, fall in."""

    def process(self, group, starts: dict, plan: dict):
        bucket, batches = group
        copies = sorted((p, source, doc_id, r, base, offset, n)
                        for source, base, batch in batches for p, doc_id, r, offset, n in batch)
        at, size = starts[bucket], plan["shard_tokens"]
        pieces: dict[int, list] = {}
        for _, source, _, _, base, offset, n in copies:
            pos = 0
            while pos < n:
                shard, local = divmod(at, size)
                take = min(size - local, n - pos)
                pieces.setdefault(shard, []).append((local, pos == 0, source, base, offset + pos, take))
                pos, at = pos + take, at + take
        yield from sorted(pieces.items())


def _check_tiling(shard: int, pieces: list) -> None:
    """The pieces of a shard, by offset, must cover it exactly once: anything else is a cutting bug."""
    at = 0
    for local, _, _, _, _, take in pieces:
        if local != at:
            raise RuntimeError(f"shard {shard}: a piece starts at {local}, expected {at}")
        at += take


class WriteShard(beam.DoFn):
    """(shard, its batches of pieces) -> the shard's files, its tokens read from the work area in file order."""

    def __init__(self, directory: str, tokenizer_sha256: str, dtype: np.dtype = shard_format.TOKEN_DTYPE):
        self.directory, self.tokenizer_sha256, self.dtype = directory, tokenizer_sha256, dtype

    def process(self, group):
        from apache_beam.io.filesystems import FileSystems
        shard, batches = group
        with timed("write"):
            pieces = sorted(p for batch in batches for p in batch)
            _check_tiling(shard, pieces)
            tokens = np.empty(sum(p[5] for p in pieces), dtype=self.dtype)
            with TokenReader(self.dtype) as reader:
                for local, _, _, base, offset, take in sorted(pieces, key=lambda p: (p[3], p[4])):
                    tokens[local:local + take] = reader.read(base, offset, take)
            starts = np.array([p[0] for p in pieces if p[1]], dtype=shard_format.INDEX_DTYPE)
            sources: dict[str, int] = {}
            for _, _, source, _, _, take in pieces:
                sources[source] = sources.get(source, 0) + take
            meta = shard_format.write_shard(self.directory, shard, tokens, starts, sources,
                                            self.tokenizer_sha256, open_write=FileSystems.create)
        inc("write.shards")
        yield meta["name"]


def _write_json(path: str, data: Any) -> None:
    write_atomically(path, json.dumps(data, indent=1, sort_keys=True, default=_plain).encode())


def _plain(obj):
    if isinstance(obj, mixture.SourcePlan):
        return obj.summary()
    if isinstance(obj, np.integer):
        return int(obj)
    raise TypeError(type(obj).__name__)


def encode_units(p: beam.Pipeline, files: list[tuple[str, str]], model: ModelFile, work: str, dtype: np.dtype):
    """The first pass: every row group of every file encoded into the work area -> its unit."""
    numbered = [(source, i, path) for i, (source, path) in enumerate(files)]
    return (p | "Files" >> beam.Create(numbered, reshuffle=False) | "Row groups" >> beam.ParDo(RowGroups())
            | "Spread row groups" >> beam.Reshuffle() | "Encode" >> beam.ParDo(EncodeRowGroup(model, work, dtype)))


def build(p: beam.Pipeline, cfg: ShardConfig, files: list[tuple[str, str]], model: ModelFile,
          tokenizer_sha256: str, staging: str, dtype: np.dtype = shard_format.TOKEN_DTYPE,
          val_header: dict | None = None) -> None:
    """The graph above; `dtype` is the tokens' (`shard_format.token_dtype` of the vocabulary), `val_header`
    what the validation datasets' dataset.json holds (vocab_size, eos_id, bos_id, tokenizer)."""
    m, seed = cfg.manifest, cfg.the_seed
    sources = [(s.name, s.share, s.epochs) for s in m.sources]
    shard_tokens = cfg.the_shard_tokens
    bucket_tokens = cfg.bucket_tokens or shard_tokens
    units = encode_units(p, files, model, output.join(staging, WORK_DIR), dtype)
    limits = split_validation(units, cfg, staging, val_header, dtype)
    plan = (units | "Unit histograms" >> beam.Map(_unit_histogram, limits, seed)
            | "Histograms" >> beam.CombineGlobally(SourceHistograms())
            | "Plan" >> beam.Map(_make_plan, sources, cfg.the_total, shard_tokens, bucket_tokens,
                                 output.join(staging, PLAN_FILE)))
    copies = units | "Copies" >> beam.FlatMap(_unit_copies, beam.pvalue.AsSingleton(plan), limits, seed)
    starts = copies | "Copy sizes" >> beam.Map(_batch_tokens) | "Bucket starts" >> beam.CombineGlobally(BucketStarts())
    (copies | "Group buckets" >> beam.GroupByKey()
     | "Cut at shard boundaries" >> beam.ParDo(CutBucket(), beam.pvalue.AsSingleton(starts),
                                               beam.pvalue.AsSingleton(plan))
     | "Group shards" >> beam.GroupByKey()
     | "Write shards" >> beam.ParDo(WriteShard(staging, tokenizer_sha256, dtype)))


class WriteValidation(beam.DoFn):
    """(source, its held-out documents' references) -> the token dataset `val/<source>/`, documents in
    hash order, read from the work area one at a time."""

    def __init__(self, directory: str, header: dict, dtype: np.dtype, shard_tokens: int):
        self.directory, self.header, self.dtype, self.shard_tokens = directory, header, dtype, shard_tokens

    def process(self, group):
        from apache_beam.io.filesystems import FileSystems
        source, batches = group
        ordered = sorted(doc for batch in batches for doc in batch)
        directory = output.join(self.directory, VAL_DIR, source)
        with TokenReader(self.dtype) as reader:
            docs = ((source, reader.read(base, offset, n)) for _, _, base, offset, n in ordered)
            shards = [shard_format.write_shard(directory, i, toks, starts, srcs, self.header["tokenizer"]["sha256"],
                                               open_write=FileSystems.create)
                      for i, (toks, starts, srcs) in enumerate(shard_format.pack(docs, self.shard_tokens, self.dtype))]
        shard_format.write_manifest(directory, shards, {**self.header, "split": "validation", "source": source},
                                    write_atomically)
        inc(f"validation.{source}.documents", len(ordered))
        yield source, len(ordered)


class ValidationLimits(beam.CombineFn):
    """(source, (validation key, id)) candidates -> {source: its last held-out (key, id)}: the largest
    of its `n` lowest candidates."""

    def __init__(self, n: int):
        self.n = n

    def create_accumulator(self):
        return {}

    def add_input(self, acc, item):
        source, candidate = item
        acc.setdefault(source, []).append(candidate)
        if len(acc[source]) > 2 * self.n:
            acc[source] = heapq.nsmallest(self.n, acc[source])
        return acc

    def merge_accumulators(self, accs):
        merged: dict[str, list] = {}
        for acc in accs:
            for source, candidates in acc.items():
                merged[source] = heapq.nsmallest(self.n, merged.get(source, []) + candidates)
        return merged

    def extract_output(self, acc):
        return {source: max(heapq.nsmallest(self.n, candidates)) for source, candidates in acc.items()}


def split_validation(units, cfg: ShardConfig, staging: str, header: dict | None, dtype: np.dtype):
    """The limits of the validation split ({source: last held-out (key, id)}) as a side input, or {}
    without a split; the held-out documents are written under staging/val/: see the module docstring."""
    if header is None or cfg.val_share <= 0 or cfg.val_docs <= 0:
        return {}
    limits = beam.pvalue.AsSingleton(units | "Validation candidates" >> beam.FlatMap(_unit_candidates, cfg.val_share)
                                     | "Limits" >> beam.CombineGlobally(ValidationLimits(cfg.val_docs)))
    _ = (units | "Held out" >> beam.FlatMap(_unit_held_out, limits)
         | "Group held out" >> beam.GroupByKey()
         | "Write validation" >> beam.ParDo(WriteValidation(staging, header, dtype, cfg.the_shard_tokens)))
    return limits


def _validation_report(staging: str, cfg: ShardConfig) -> dict:
    """What was held out: the split's rule and, per source, its documents and tokens."""
    from apache_beam.io.filesystems import FileSystems
    sources = {}
    for source in sorted({s.name for s in cfg.manifest.sources}):
        path = output.join(staging, VAL_DIR, source, shard_format.MANIFEST)
        if FileSystems.exists(path):
            m = _read_json(path)
            sources[source] = {"documents": m["num_documents"], "tokens": m["num_tokens"]}
    return {"share": cfg.val_share, "max_documents": cfg.val_docs, "directory": VAL_DIR, "sources": sources}


def _read_json(path: str) -> Any:
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(path) as f:
        return json.loads(f.read())


def source_files(manifest: Manifest) -> list[tuple[str, str]]:
    return [(s.name, f) for s in manifest.sources if s.share > 0 for f in manifest.files(s.name)]


def _inputs(cfg: ShardConfig, files: list[tuple[str, str]]) -> list[str]:
    """What the job reads, for the overlap check: the manifest, the tokenizer, every source file."""
    return [cfg.manifest.path, cfg.tokenizer, *(f for _, f in files)]


def run(cfg: ShardConfig, beam_args: list[str] | None = None, overwrite: bool = False,
        max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    """Build the dataset in cfg.output; print and return its summary."""
    files = source_files(cfg.manifest)
    claim = claim_output(cfg.output, "tokenizer shards", OWNED, _inputs(cfg, files), overwrite, max_lease_age)
    model_path = tokenizer_model(cfg.tokenizer)
    sp, sha = load_tokenizer(cfg.tokenizer)
    dtype = shard_format.token_dtype(sp.get_piece_size())
    opts = pipeline_options(beam_args or [])
    with claim as out:
        staging = out.stage()
        t0 = time.time()
        p = make_pipeline(opts)
        val_header = {"vocab_size": sp.get_piece_size(), "eos_id": sp.eos_id(), "bos_id": sp.bos_id(),
                      "shard_tokens": cfg.the_shard_tokens, "tokenizer": {"path": cfg.tokenizer, "sha256": sha}}
        build(p, cfg, files, ModelFile(model_path), sha, staging, dtype, val_header)
        result = p.run()
        result.wait_until_finish()
        work = output.join(staging, WORK_DIR)
        delete_files([output.join(work, f) for f in files_under(work)])   # the first pass's files are no output
        plan = _read_json(output.join(staging, PLAN_FILE))
        shards = [_read_json(output.join(staging, shard_format.shard_name(i) + ".json"))
                  for i in range(-(-plan["planned_tokens"] // plan["shard_tokens"]))]
        # the old manifest goes first (the directory stops being a dataset), then the old shards
        out.remove(shard_format.MANIFEST)
        validation = _validation_report(staging, cfg)      # before publishing moves the staged files
        # without a split, an earlier build's val/ still goes: it may hold documents this build trains on
        held_out = cfg.val_share > 0 and cfg.val_docs > 0
        out.publish(["shard-*"] + ([VAL_DIR] if held_out or any(f.split("/")[0] == VAL_DIR for f in out.files) else []))
        wall = time.time() - t0
        counters = counters_of(result)
        header = {"vocab_size": sp.get_piece_size(), "eos_id": sp.eos_id(), "bos_id": sp.bos_id(),
                  "shard_tokens": plan["shard_tokens"], "seed": cfg.the_seed,
                  "tokenizer": {"path": cfg.tokenizer, "sha256": sha},
                  "manifest": {"name": cfg.manifest.name, "path": cfg.manifest.path},
                  "target_total_tokens": cfg.the_total,
                  "mixture": mixture_report(shards, plan),
                  "validation": validation}
        manifest = shard_format.write_manifest(cfg.output, shards, header,
                                               lambda path, data: out.write(shard_format.MANIFEST, data))
        summary = job_summary(manifest, counters, wall, local_cores(opts))
        out.write(STATS, json.dumps(summary, indent=1, sort_keys=True, default=_plain).encode())
    print(format_summary(summary), flush=True)
    return summary
