"""The shard job (Apache Beam): the curated documents of every source of a manifest -> token shards in the
manifest's mixture (`tokenizer.shard_format`), globally shuffled with the manifest's seed.

Graph: read Parquet documents -> encode with SentencePiece (one processor per worker), append EOS ->
tokens per source, as a histogram by subsample hash -> the plan (`tokenizer.mixture`) -> every copy of
every document with its position p -> range buckets of p, each sorted -> global offsets from the buckets'
sizes -> pieces cut at shard boundaries -> one writer per shard. No step holds more than one bucket or one
shard; nothing depends on the runner's bundling, so the same inputs and seed give the same bytes.

Before the histograms, a validation split is set aside: each document whose hash (of source and id alone,
so the split survives a change of the shuffle seed) falls below `val_share` is a candidate, and the
`val_docs` candidates of each source with the lowest hashes are held out (the others go back to training).
Held-out documents never enter the mixture; each source's are written, in hash order, as a token dataset
of the same format in `val/<source>/` (the trainer's validation loss reads them).
"""
from __future__ import annotations

import dataclasses
import hashlib
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
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output, write_atomically
from pipeline.runtime.progress import Progress
from pipeline.runtime.runner import local_cores, make_pipeline, pipeline_options
from tokenizer import mixture, shard_format
from tokenizer.manifest import Manifest
from tokenizer.shards_report import format_summary, job_summary, mixture_report

TOKENIZER_FILE = "tokenizer.model"
PLAN_FILE = "plan.json"
STATS = "stats.json"
VAL_DIR = "val"
OWNED = ["shard-*", "dataset.json", STATS, PLAN_FILE, VAL_DIR]
BATCH = 256
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


class RowGroups(beam.DoFn):
    """(source, Parquet file) -> (source, file, row group): units of reading work, spread over workers
    without shuffling any text."""

    def process(self, item):
        source, path = item
        import pyarrow.parquet as pq
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.open(path) as f:
            n = pq.ParquetFile(f).metadata.num_row_groups
        for i in range(n):
            yield source, path, i


class ReadTexts(beam.DoFn):
    """(source, file, row group) -> (source, [document ids], [texts]): batches straight from the file, so
    that encoding runs on batches too."""

    def process(self, item):
        source, path, row_group = item
        import pyarrow.parquet as pq
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.open(path) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH, row_groups=[row_group],
                                                        columns=["id", "text"]):
                ids, texts = batch.column("id").to_pylist(), batch.column("text").to_pylist()
                kept = [(i, t) for i, t in zip(ids, texts) if t]
                if len(kept) < len(ids):
                    inc(f"tokenize.{source}.empty_documents", len(ids) - len(kept))
                if kept:
                    yield source, [i for i, _ in kept], [t for _, t in kept]


class Encode(beam.DoFn):
    """(source, ids, texts) -> (source, id, token bytes of `dtype` ending with EOS) per document.
    SentencePiece's batch call is a third faster than one call per document, even on one thread."""

    def __init__(self, model: ModelFile, dtype: np.dtype = shard_format.TOKEN_DTYPE):
        self.model, self.dtype = model, dtype

    def setup(self):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_file=self.model.local_path())
        self.eos = self.sp.eos_id()
        self.progress = Progress("documents tokenized on this worker")

    def process(self, item):
        source, doc_ids, texts = item
        with timed("tokenize"):
            encoded = self.sp.encode(texts, num_threads=1)
        n_tokens = 0
        for doc_id, ids in zip(doc_ids, encoded):
            ids.append(self.eos)
            n_tokens += len(ids)
            self.progress.tick()
            yield source, doc_id, np.asarray(ids, dtype=self.dtype).tobytes()
        inc(f"tokenize.{source}.documents", len(texts))
        inc(f"tokenize.{source}.tokens", n_tokens)
        inc(f"tokenize.{source}.bytes", sum(len(t.encode("utf-8", "surrogatepass")) for t in texts))


class TokenHistogram(beam.CombineFn):
    """Per source: tokens by subsample bucket, and the number of documents."""

    def create_accumulator(self):
        return np.zeros(mixture.HIST_BUCKETS, dtype=np.int64), 0

    def add_input(self, acc, item):
        hist, n = acc
        bucket, tokens = item
        hist[bucket] += tokens
        return hist, n + 1

    def merge_accumulators(self, accs):
        accs = list(accs)
        return sum(a[0] for a in accs), sum(a[1] for a in accs)

    def extract_output(self, acc):
        return acc


def _make_plan(hists: dict, cfg_sources, total: int | None, shard_tokens: int, bucket_tokens: int) -> dict:
    plans = mixture.make_plan(cfg_sources, {k: v[0] for k, v in hists.items()},
                              {k: v[1] for k, v in hists.items()}, total)
    planned = sum(p.planned_tokens for p in plans.values())
    return {"sources": plans, "planned_tokens": planned,
            "buckets": mixture.n_buckets(planned, bucket_tokens), "shard_tokens": shard_tokens}


def _bucket_starts(sizes: dict[int, int]) -> dict[int, int]:
    """Where each bucket starts in the output stream: the tokens of all buckets before it."""
    starts, total = {}, 0
    for bucket in sorted(sizes):
        starts[bucket], total = total, total + sizes[bucket]
    return starts


def _copies(item, plan: dict, seed: int):
    source, doc_id, tokens = item
    for r, p in plan["sources"][source].copies(seed, doc_id):
        yield mixture.bucket_of(p, plan["buckets"]), (p, source, doc_id, r, tokens)


class CutBucket(beam.DoFn):
    """A sorted bucket of copies -> (shard, (offset in shard, starts a document, source, tokens))."""

    def __init__(self, dtype: np.dtype = shard_format.TOKEN_DTYPE):
        self.dtype = dtype

    def process(self, group, starts: dict, plan: dict):
        bucket, copies = group
        offset = starts[bucket]
        size = plan["shard_tokens"]
        for _, source, _, _, tokens in sorted(copies, key=lambda c: c[:4]):
            toks = np.frombuffer(tokens, dtype=self.dtype)
            pos = 0
            while pos < len(toks):
                shard, local = divmod(offset, size)
                take = min(size - local, len(toks) - pos)
                yield shard, (local, pos == 0, source, toks[pos:pos + take].tobytes())
                pos, offset = pos + take, offset + take


class WriteShard(beam.DoFn):
    def __init__(self, directory: str, tokenizer_sha256: str, dtype: np.dtype = shard_format.TOKEN_DTYPE):
        self.directory, self.tokenizer_sha256, self.dtype = directory, tokenizer_sha256, dtype

    def process(self, group):
        from apache_beam.io.filesystems import FileSystems
        shard, pieces = group
        with timed("write"):
            pieces = sorted(pieces)
            tokens = np.frombuffer(b"".join(p[3] for p in pieces), dtype=self.dtype)
            starts = np.array([p[0] for p in pieces if p[1]], dtype=shard_format.INDEX_DTYPE)
            sources: dict[str, int] = {}
            for _, _, source, data in pieces:
                sources[source] = sources.get(source, 0) + len(data) // self.dtype.itemsize
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


def build(p: beam.Pipeline, cfg: ShardConfig, files: list[tuple[str, str]], model: ModelFile,
          tokenizer_sha256: str, staging: str, dtype: np.dtype = shard_format.TOKEN_DTYPE,
          val_header: dict | None = None) -> None:
    """The graph above; `dtype` is the tokens' (`shard_format.token_dtype` of the vocabulary), `val_header`
    what the validation datasets' dataset.json holds (vocab_size, eos_id, bos_id, tokenizer)."""
    m, seed = cfg.manifest, cfg.the_seed
    width = dtype.itemsize
    sources = [(s.name, s.share, s.epochs) for s in m.sources]
    shard_tokens = cfg.the_shard_tokens
    bucket_tokens = cfg.bucket_tokens or shard_tokens
    total = cfg.the_total
    docs = (p | "Files" >> beam.Create(files) | "Row groups" >> beam.ParDo(RowGroups())
            | "Spread row groups" >> beam.Reshuffle() | "Read" >> beam.ParDo(ReadTexts())
            | "Encode" >> beam.ParDo(Encode(model, dtype)))
    if val_header is not None:
        docs = split_validation(docs, cfg, staging, val_header, dtype)
    hists = (docs | "Subsample buckets" >> beam.Map(
                lambda d: (d[0], (mixture.doc_bucket(seed, d[0], d[1]), len(d[2]) // width)))
             | "Histograms" >> beam.CombinePerKey(TokenHistogram()))
    plan = (hists | "All histograms" >> beam.combiners.ToDict()
            | "Plan" >> beam.Map(_make_plan, sources, total, shard_tokens, bucket_tokens))
    _ = plan | "Save plan" >> beam.Map(lambda pl: _write_json(output.join(staging, PLAN_FILE), pl))
    copies = docs | "Copies" >> beam.FlatMap(_copies, beam.pvalue.AsSingleton(plan), seed)
    starts = (copies | "Copy sizes" >> beam.Map(lambda kv: (kv[0], len(kv[1][4]) // width))
              | "Bucket sizes" >> beam.CombinePerKey(sum) | "Size table" >> beam.combiners.ToDict()
              | "Bucket starts" >> beam.Map(_bucket_starts))
    (copies | "Group buckets" >> beam.GroupByKey()
     | "Cut at shard boundaries" >> beam.ParDo(CutBucket(dtype), beam.pvalue.AsSingleton(starts),
                                               beam.pvalue.AsSingleton(plan))
     | "Group shards" >> beam.GroupByKey()
     | "Write shards" >> beam.ParDo(WriteShard(staging, tokenizer_sha256, dtype)))


def val_key(source: str, doc_id: str) -> float:
    """The document's place in the validation order (below val_share: a candidate)."""
    return mixture.unit(0, "validation", source, doc_id)


def _val_thresholds(candidates: list[tuple[float, str]]) -> tuple[float, str]:
    """The last held-out (key, id) of a source: its val_docs lowest candidates."""
    return max(candidates)


def _held_out(doc, limits: dict) -> bool:
    source, doc_id, _ = doc
    limit = limits.get(source)
    return limit is not None and (val_key(source, doc_id), doc_id) <= limit


class WriteValidation(beam.DoFn):
    """(source, its held-out documents) -> the token dataset `val/<source>/`, documents in hash order."""

    def __init__(self, directory: str, header: dict, dtype: np.dtype, shard_tokens: int):
        self.directory, self.header, self.dtype, self.shard_tokens = directory, header, dtype, shard_tokens

    def process(self, group):
        from apache_beam.io.filesystems import FileSystems
        source, docs = group
        ordered = sorted(docs, key=lambda d: (val_key(source, d[1]), d[1]))
        directory = output.join(self.directory, VAL_DIR, source)
        pieces = shard_format.pack(((source, np.frombuffer(d[2], dtype=self.dtype)) for d in ordered),
                                   self.shard_tokens, self.dtype)
        shards = [shard_format.write_shard(directory, i, toks, starts, srcs, self.header["tokenizer"]["sha256"],
                                           open_write=FileSystems.create)
                  for i, (toks, starts, srcs) in enumerate(pieces)]
        shard_format.write_manifest(directory, shards, {**self.header, "split": "validation", "source": source},
                                    write_atomically)
        inc(f"validation.{source}.documents", len(ordered))
        yield source, len(ordered)


def split_validation(docs, cfg: ShardConfig, staging: str, header: dict, dtype: np.dtype):
    """(training documents, the held-out ones written under staging/val/): see the module docstring."""
    if cfg.val_share <= 0 or cfg.val_docs <= 0:
        return docs
    share = cfg.val_share
    limits = (docs | "Validation candidates" >> beam.FlatMap(
                  lambda d: [(d[0], (val_key(d[0], d[1]), d[1]))] if val_key(d[0], d[1]) < share else [])
              | "Lowest candidates" >> beam.combiners.Top.SmallestPerKey(cfg.val_docs)
              | "Last held out" >> beam.MapTuple(lambda source, c: (source, _val_thresholds(c)))
              | "Limits" >> beam.combiners.ToDict())
    held = docs | "Held out" >> beam.Filter(_held_out, beam.pvalue.AsSingleton(limits))
    _ = (held | "By source" >> beam.Map(lambda d: (d[0], d)) | "Group held out" >> beam.GroupByKey()
         | "Write validation" >> beam.ParDo(WriteValidation(staging, header, dtype, cfg.the_shard_tokens)))
    return docs | "Training documents" >> beam.Filter(lambda d, lim: not _held_out(d, lim),
                                                      beam.pvalue.AsSingleton(limits))


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
