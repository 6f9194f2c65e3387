"""The classifier's training set, as a Beam job: Wikipedia reference pages vs random crawl pages.

1. Reference URLs: every URL cited by a main-namespace article of the pages-articles dump(s).
2. Join: crawl records (WET or WARC, read by the CC job's reader) whose normalised URL is cited are
   positives; every other crawl page is a negative candidate.
3. Clean: pages under `min_chars` are dropped; exact duplicates (same normalised text) are collapsed, a
   referenced copy winning over an unreferenced one, so no negative is the text of a reference.
4. Split: each page goes to train / valid / test by a hash of its id and the seed.
5. Balance: within each split, negatives are a uniform random sample (lowest hash priority) of the
   candidates, `negatives_per_positive` times the positives.

Instead of a dump and a crawl, ready positives and negatives can be given as Parquet or JSONL files with a
`text` column (and optionally `id`, `url`). Output: `{train,valid,test}.txt` (fastText format),
`{train,valid,test}.parquet` (id, url, label, text), `counts.json`, `dead_letters/`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from apache_beam.io.filesystems import FileSystems

from classifier.urls import normalize_url
from classifier.wikidump import reference_urls
from pipeline.readers.crawl import read_crawl
from pipeline.runtime import output
from pipeline.runtime.counters import inc
from pipeline.runtime.runner import pipeline_options, run_graph
from pipeline.doc_files import iter_rows, local_files
from pipeline.inputs import expand_inputs, open_stream, spec_items
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output
from pipeline.schema import DEAD_LETTER_SCHEMA, DeadLetter
from pipeline.wikidump import DumpError, is_article, iter_pages

LABELS = {1: "__label__ref", 0: "__label__random"}
SPLITS = ("train", "valid", "test")
COUNTS = "counts.json"
EXAMPLE_SCHEMA = pa.schema([("id", pa.string()), ("url", pa.string()), ("label", pa.int8()), ("text", pa.string())])
log = logging.getLogger(__name__)


@dataclasses.dataclass
class DatasetConfig:
    output: str
    wikipedia: str | None = None
    crawl: str | None = None
    positives: str | None = None
    negatives: str | None = None
    min_chars: int = 1000
    negatives_per_positive: float = 1.0
    valid_share: float = 0.1
    test_share: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        ready = self.positives is not None or self.negatives is not None
        raw = self.wikipedia is not None or self.crawl is not None
        if ready == raw or (ready and not (self.positives and self.negatives)) or \
                (raw and not (self.wikipedia and self.crawl)):
            raise ValueError("give either --wikipedia and --crawl, or --positives and --negatives")
        if not (0 < self.valid_share + self.test_share < 1) or self.valid_share <= 0 or self.test_share <= 0:
            raise ValueError("--valid-share and --test-share must be > 0 and leave room for training")
        if self.negatives_per_positive <= 0 or self.min_chars < 0:
            raise ValueError("--negatives-per-positive must be > 0 and --min-chars >= 0")


@dataclasses.dataclass
class Example:
    id: str
    url: str
    label: int
    text: str


def _unit(*parts) -> float:
    return xxhash.xxh64_intdigest(":".join(map(str, parts)).encode("utf-8", "surrogatepass")) / 2.0 ** 64


class _CitedUrls(beam.DoFn):
    """Dump file -> normalised URL for every citation in its articles; a damaged dump is a dead letter,
    and the articles read before the damage still count."""

    def process(self, item):
        index, path = item
        pages = 0
        try:
            with open_stream(path) as stream:
                for page in iter_pages(stream):
                    pages += 1
                    if not is_article(page):
                        inc("dump.pages_skipped")
                        continue
                    inc("dump.articles")
                    for url in reference_urls(page.text):
                        key = normalize_url(url)
                        inc("dump.references" if key else "dump.references_unusable")
                        if key:
                            yield key
        except (DumpError, OSError) as exc:
            inc("dump.dead_letters")
            letter = DeadLetter(path, -1, f"{exc} ({pages} pages read)")
            yield beam.pvalue.TaggedOutput("dead", (f"dump{index:06d}:0", letter))


def _by_url(kv):
    _, doc = kv
    key = normalize_url(doc.url)
    if key is None:
        inc("crawl.pages_without_url")
        return []
    return [(key, Example(doc.id, doc.url, 0, doc.text))]


def _label(kv):
    _, joined = kv
    cited = bool(joined["cited"])
    if cited and joined["page"]:
        inc("join.cited_urls_in_crawl")
    for ex in joined["page"]:
        ex.label = int(cited)
        inc("join.positives" if cited else "join.negative_candidates")
        yield ex


def _normalised_text_key(ex: Example) -> int:
    return xxhash.xxh64_intdigest(" ".join(ex.text.lower().split()).encode("utf-8", "surrogatepass"))


class _KeepLongEnough(beam.DoFn):
    def __init__(self, min_chars: int):
        self.min_chars = min_chars

    def process(self, ex: Example):
        if len(ex.text) < self.min_chars:
            inc(f"clean.too_short_{LABELS[ex.label][9:]}")
            return
        yield _normalised_text_key(ex), ex


def _one_per_text(group):
    """Of pages with the same text, a positive if there is one (else a negative), the smallest id."""
    _, examples = group
    ranked = sorted(examples, key=lambda e: (-e.label, e.id, e.url))
    for ex in ranked[1:]:
        inc(f"clean.duplicates_{LABELS[ex.label][9:]}")
    yield ranked[0]


class _Split(beam.DoFn):
    def __init__(self, cfg: DatasetConfig):
        self.seed, self.valid, self.test = cfg.seed, cfg.valid_share, cfg.test_share
        self.ratio = cfg.negatives_per_positive

    def process(self, ex: Example, n_pos: int, n_neg: int):
        u = _unit("split", self.seed, ex.id)
        split = "test" if u < self.test else "valid" if u < self.test + self.valid else "train"
        priority = _unit("negative", self.seed, ex.id)
        # a generous prefilter keeps per-split groups small; the exact sample is taken when writing
        if ex.label == 0 and n_neg and priority > min(1.0, 2.0 * self.ratio * n_pos / n_neg + 0.01):
            return
        yield split, (ex.label, priority, ex)


class _WriteSplit(beam.DoFn):
    def __init__(self, staging: str, ratio: float):
        self.staging, self.ratio = staging, ratio

    def process(self, group):
        split, items = group
        pos = sorted((ex for label, _, ex in items if label == 1), key=lambda e: (e.id, e.text))
        neg = [ex for _, _, ex in sorted((i for i in items if i[0] == 0), key=lambda i: (i[1], i[2].id, i[2].text))]
        neg = neg[: round(len(pos) * self.ratio)]
        examples = sorted(pos + neg, key=lambda e: (_unit("order", split, e.id), e.id, e.label, e.text))
        inc(f"split.{split}.positives", len(pos))
        inc(f"split.{split}.negatives", len(neg))
        lines = "".join(f"{LABELS[e.label]} {' '.join(e.text.split())}\n" for e in examples)
        with FileSystems.create(output.join(self.staging, f"{split}.txt")) as f:
            f.write(lines.encode("utf-8"))
        table = pa.Table.from_pylist([dataclasses.asdict(e) for e in examples], schema=EXAMPLE_SCHEMA)
        with FileSystems.create(output.join(self.staging, f"{split}.parquet")) as f:
            pq.write_table(table, f, compression="zstd")
        yield split


class _ReadCrawl(beam.DoFn):
    """(file index, path) -> (key, page); dead letters tagged "dead"."""

    def process(self, item):
        index, path = item
        for seq, rec in enumerate(read_crawl(path, 8 << 20), 1):
            inc("read.records")
            key = output.doc_key(index, seq)
            if isinstance(rec, DeadLetter):
                inc("read.dead_letters")
                yield beam.pvalue.TaggedOutput("dead", (key, rec))
            else:
                inc("read.docs_out")
                yield key, rec


def _read_ready(path_and_label):
    path, label = path_and_label
    for i, row in enumerate(iter_rows(path)):
        if not row.get("text"):
            inc("ready.rows_without_text")
            continue
        inc("ready.rows")
        yield Example(str(row.get("id") or f"{os.path.basename(path)}:{i}"), row.get("url") or "", label, row["text"])


def build(p: beam.Pipeline, cfg: DatasetConfig, staging: str) -> None:
    if cfg.wikipedia:
        dumps = p | "Dumps" >> beam.Create(list(enumerate(expand_inputs(cfg.wikipedia))))
        cited = dumps | "Cited URLs" >> beam.ParDo(_CitedUrls()).with_outputs("dead", main="urls")
        refs = cited.urls | "Distinct URLs" >> beam.Distinct() | "Cited" >> beam.Map(lambda k: (k, True))
        files = expand_inputs(cfg.crawl)
        crawl = (p | "Crawl files" >> beam.Create(list(enumerate(files))) | "Spread" >> beam.Reshuffle()
                 | "Read crawl" >> beam.ParDo(_ReadCrawl()).with_outputs("dead", main="docs"))
        pages = crawl.docs | "By URL" >> beam.FlatMap(_by_url)
        examples = ({"cited": refs, "page": pages} | "Join" >> beam.CoGroupByKey()
                    | "Label" >> beam.FlatMap(_label))
        dead = (cited.dead, crawl.dead) | "Dead letters" >> beam.Flatten()
    else:
        ready = [(f, 1) for f in local_files(cfg.positives)] + [(f, 0) for f in local_files(cfg.negatives)]
        examples = p | "Ready files" >> beam.Create(ready) | "Read ready" >> beam.FlatMap(_read_ready)
        dead = p | "No dead letters" >> beam.Create([])
    clean = (examples | "Min length" >> beam.ParDo(_KeepLongEnough(cfg.min_chars))
             | "Group texts" >> beam.GroupByKey() | "One per text" >> beam.FlatMap(_one_per_text))
    n_pos = clean | "Positives" >> beam.Filter(lambda e: e.label == 1) | "Count pos" >> beam.combiners.Count.Globally()
    n_neg = clean | "Negatives" >> beam.Filter(lambda e: e.label == 0) | "Count neg" >> beam.combiners.Count.Globally()
    (clean | "Split" >> beam.ParDo(_Split(cfg), beam.pvalue.AsSingleton(n_pos), beam.pvalue.AsSingleton(n_neg))
     | "Group splits" >> beam.GroupByKey()
     | "Write splits" >> beam.ParDo(_WriteSplit(staging, cfg.negatives_per_positive)))
    (dead | "Dead rows" >> beam.Map(lambda kv: (kv[0], kv[1].to_row()))
     | "Write dead letters" >> output.WriteShards(output.join(staging, "dead_letters"), DEAD_LETTER_SCHEMA, 1))


def _inputs(cfg: DatasetConfig) -> list[str]:
    """Every file and path the job reads, for the overlap check."""
    paths = []
    for spec in (cfg.wikipedia, cfg.crawl):
        if spec:
            paths += spec_items(spec) + expand_inputs(spec)
    for spec in (cfg.positives, cfg.negatives):
        if spec:
            paths += local_files(spec)
    return paths


def run(cfg: DatasetConfig, beam_args: list[str] | None = None, overwrite: bool = False,
        max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    cfg.validate()
    names = [f"{s}.{ext}" for s in SPLITS for ext in ("txt", "parquet")]
    claim = claim_output(cfg.output, "classifier dataset", names + ["dead_letters", COUNTS], _inputs(cfg),
                         overwrite, max_lease_age)
    opts = pipeline_options(beam_args or [])
    with claim as out:
        counts, _ = run_graph(opts, lambda p: build(p, cfg, out.stage()))
        missing = [n for n in names if not FileSystems.exists(out.stage(n))]
        if missing:
            raise ValueError(f"the dataset has no {', '.join(sorted({m.split('.')[0] for m in missing}))} split: "
                             f"too few pages ({counts.get('join.positives', counts.get('ready.rows', 0))} positives)")
        out.publish(names + ["dead_letters"])
        summary = _summary(counts)
        out.write(COUNTS, json.dumps(summary, indent=2).encode())
    print(json.dumps(summary, indent=2))
    return summary


def _summary(c: dict[str, int]) -> dict:
    g = lambda k: c.get(k, 0)  # noqa: E731
    return {
        "dump": {"articles": g("dump.articles"), "pages_skipped": g("dump.pages_skipped"),
                 "references_found": g("dump.references"), "unusable_urls": g("dump.references_unusable"),
                 "dead_letters": g("dump.dead_letters")},
        "crawl": {"records": g("read.records"), "pages": g("read.docs_out"), "dead_letters": g("read.dead_letters"),
                  "pages_without_url": g("crawl.pages_without_url")},
        "join": {"cited_urls_in_crawl": g("join.cited_urls_in_crawl"), "positives": g("join.positives"),
                 "negative_candidates": g("join.negative_candidates"), "ready_rows": g("ready.rows")},
        "clean": {k.split(".", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("clean.")},
        "splits": {s: {"positives": g(f"split.{s}.positives"), "negatives": g(f"split.{s}.negatives")}
                   for s in SPLITS},
    }
