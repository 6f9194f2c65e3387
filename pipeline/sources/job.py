"""The job every non-CC source runs: read files -> per-document steps -> whole-run dedup steps -> sharded
Parquet, with rejects, dead letters, stats.json and the funnel laid out exactly as the CC job's."""
from __future__ import annotations

import json
import logging
import time
from typing import Iterator

import apache_beam as beam

from pipeline.inputs import spec_items
from pipeline.runtime import output
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output
from pipeline.runtime.counters import doc_bytes, inc, timed, timed_iter
from pipeline.runtime.funnel import counters_of, format_funnel, stage_funnel
from pipeline.runtime.output import doc_key
from pipeline.runtime.progress import Progress
from pipeline.runtime.runner import local_cores, make_pipeline, pipeline_options
from pipeline.schema import DEAD_LETTER_SCHEMA, DOC_SCHEMA, REJECT_SCHEMA, DeadLetter, Document, Rejected
from pipeline.sources.base import Source

DEAD, REJECTED = "dead", "rejected"
OUTPUTS = ["docs", "rejects", "dead_letters"]
STATS = "stats.json"
MAX_DEFAULT_SHARDS = 64   # one Parquet file per input file, up to this many (a directory of repositories has thousands)
log = logging.getLogger(__name__)


def _rejected(key: str, rej: Rejected):
    inc(f"{rej.stage}.rejected")
    inc(f"{rej.stage}.rejected_bytes", doc_bytes(rej.doc.text))
    return beam.pvalue.TaggedOutput(REJECTED, (key, rej))


class ReadSource(beam.DoFn):
    """(file index, path) -> (key, Document); rejects and dead letters tagged. A file that fails midway
    keeps what was read and adds one dead letter for the rest."""

    def __init__(self, source: Source, n_files: int):
        self.source, self.n_files = source, n_files

    def process(self, item):
        index, path = item
        counts = {"docs": 0, "dead": 0, "progress": Progress(f"{self.source.name} records read from {path}")}
        yield from timed_iter("read", self._items(index, path, counts))
        inc("read.files")
        log.info("read %s (%d/%d): %d documents, %d dead letters", path, index + 1, self.n_files,
                 counts["docs"], counts["dead"])

    def _items(self, index: int, path: str, counts: dict) -> Iterator:
        seq = 0
        try:
            for item in self.source.read(path):
                seq += 1
                counts["progress"].tick()
                key = doc_key(index, seq)
                if isinstance(item, DeadLetter):
                    counts["dead"] += 1
                    inc("read.dead_letters")
                    yield beam.pvalue.TaggedOutput(DEAD, (key, item))
                    continue
                inc("read.records")
                doc = item.doc if isinstance(item, Rejected) else item
                inc("read.docs_out")
                inc("read.bytes_out", doc_bytes(doc.text))
                counts["docs"] += 1
                yield _rejected(key, item) if isinstance(item, Rejected) else (key, item)
        except Exception as exc:  # the source could not go on: what was read stands, the rest is one dead letter
            counts["dead"] += 1
            inc("read.dead_letters")
            where = "cannot read file" if seq == 0 else f"reading stopped after record {seq}"
            yield beam.pvalue.TaggedOutput(
                DEAD, (doc_key(index, seq + 1), DeadLetter(path, -1, f"{where}: {type(exc).__name__}: {exc}")))


class ApplySteps(beam.DoFn):
    def __init__(self, source: Source):
        self.source = source

    def setup(self):
        self.steps = self.source.steps()

    def process(self, kv):
        key, doc = kv
        for step in self.steps:
            before = doc_bytes(doc.text)
            with timed(step.stage):
                try:
                    result = step.apply(doc)
                except Exception as exc:  # a document a step cannot handle costs that document only
                    result = f"{step.stage} failed: {type(exc).__name__}: {exc}"
            if isinstance(result, (str, Rejected)):
                yield _rejected(key, result if isinstance(result, Rejected) else Rejected(doc, step.stage, result))
                return
            doc = result
            trimmed = before - doc_bytes(doc.text)
            if trimmed:
                inc(f"{step.stage}.trimmed_bytes", trimmed)
        yield key, doc


def _count_kept(kv):
    doc: Document = kv[1]
    inc("kept.docs")
    inc("kept.bytes", doc_bytes(doc.text))
    lang = doc.metadata.get("language")
    if lang:
        inc(f"language.{lang}")
    return kv[0], doc.to_row()


def build(p: beam.Pipeline, source: Source, files: list[str], staging: str, n_shards: int) -> None:
    read = (p | "Files" >> beam.Create(list(enumerate(files)))
            | "Spread files" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadSource(source, len(files))).with_outputs(DEAD, REJECTED, main="docs"))
    stepped = (read.docs | "Spread documents" >> beam.Reshuffle()
               | "Steps" >> beam.ParDo(ApplySteps(source)).with_outputs(REJECTED, main="kept"))
    kept, rejects = stepped.kept, [read[REJECTED], stepped[REJECTED]]
    for i, transform in enumerate(source.dedup_steps()):
        kept, dropped = kept | f"Dedup {i}" >> transform
        rejects.append(dropped)
    (kept | "Doc rows" >> beam.Map(_count_kept)
     | "Write docs" >> output.WriteShards(output.join(staging, "docs"), DOC_SCHEMA, n_shards))
    (rejects | "All rejects" >> beam.Flatten() | "Reject rows" >> beam.Map(lambda kv: (kv[0], kv[1].to_row()))
     | "Write rejects" >> output.WriteShards(output.join(staging, "rejects"), REJECT_SCHEMA, n_shards))
    (read[DEAD] | "Dead rows" >> beam.Map(lambda kv: (kv[0], kv[1].to_row()))
     | "Write dead letters" >> output.WriteShards(output.join(staging, "dead_letters"), DEAD_LETTER_SCHEMA, n_shards))


def run(source: Source, input_spec: str, out: str, beam_args: list[str] | None = None,
        output_shards: int | None = None, max_files: int | None = None, overwrite: bool = False,
        max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    """Run the source's job to completion, publish its outputs, write stats.json, print the funnel."""
    if output_shards is not None and output_shards < 1:
        raise ValueError("--output-shards must be >= 1")
    files = source.files(input_spec, max_files)
    claim = claim_output(out, f"pipeline {source.name}", OUTPUTS + [STATS], [*files, *spec_items(input_spec)],
                         overwrite, max_lease_age)
    log.info("%s job: %d input files -> %s", source.name, len(files), out)
    opts = pipeline_options(beam_args or [])
    with claim as claimed:
        t0 = time.time()
        p = make_pipeline(opts)
        build(p, source, files, claimed.stage(), output_shards or min(MAX_DEFAULT_SHARDS, max(1, len(files))))
        result = p.run()
        result.wait_until_finish()
        wall = time.time() - t0
        claimed.publish(OUTPUTS)
        funnel = stage_funnel(counters_of(result), list(source.stages), wall, local_cores(opts))
        stats = {"job": source.name, "input_files": len(files), "config": source.config(), **funnel}
        claimed.write(STATS, json.dumps(stats, indent=2, default=str).encode())
    print(f"{source.name}:\n{format_funnel(funnel)}", flush=True)
    return stats
