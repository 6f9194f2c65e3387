"""Builds and runs the CC job. The same graph runs on the DirectRunner (default: one worker process per
core), Dataflow, Flink and Spark; everything a worker needs travels inside the graph or is installed from
the package's dependencies."""
from __future__ import annotations

import json
import logging
import time

import apache_beam as beam

from pipeline.cc import dedup, filters, read
from pipeline.cc.config import CCConfig
from pipeline.cc.funnel import build_funnel
from pipeline.runtime.funnel import counters_of, format_funnel
from pipeline.inputs import expand_inputs, spec_items
from pipeline.langid import default_lid_model
from pipeline.model_files import ModelFile
from pipeline.runtime import output
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output
from pipeline.runtime.runner import local_cores, make_pipeline, pipeline_options
from pipeline.schema import DEAD_LETTER_SCHEMA, DOC_SCHEMA, REJECT_SCHEMA

JOB = "pipeline cc"
OUTPUTS = ["docs", "rejects", "dead_letters"]
STATS = "stats.json"
SPREAD_BELOW_FILES = 64
log = logging.getLogger(__name__)


def build(p: beam.Pipeline, cfg: CCConfig, files: list[str], staging: str) -> None:
    n_shards = cfg.output_shards or max(1, len(files))
    lid_model = ModelFile(cfg.lid_model or default_lid_model())

    parsed = (p | "Files" >> beam.Create(list(enumerate(files)))
              | "Spread files" >> beam.Reshuffle()
              | "Read" >> beam.ParDo(read.ReadRecords(cfg.max_record_bytes, len(files))).with_outputs(
                  read.DEAD, main="docs"))
    docs = parsed.docs
    if len(files) < SPREAD_BELOW_FILES:
        # few large files: reading is one task per file, so spread the documents before the heavy steps
        docs = docs | "Spread documents" >> beam.Reshuffle()
    kept, dup_rejects = docs | "Document dedup" >> dedup.DocumentDedup(
        cfg.exact_dedup, cfg.near_dedup, cfg.minhash_threshold, cfg.minhash_perms, cfg.minhash_ngram,
        dedup.TemplateRule(cfg.template_line_docs, cfg.template_max_words, cfg.template_line_docs_long))
    deduped = kept | "Line dedup" >> dedup.LineDedup(cfg.line_dedup)
    filtered = deduped | "Filter" >> beam.ParDo(filters.Filter(
        cfg.min_chars, lid_model, cfg.languages, cfg.lid_threshold, cfg.scorers)).with_outputs(
        filters.REJECTED, main="kept")
    rejects = (dup_rejects, filtered[filters.REJECTED]) | "All rejects" >> beam.Flatten()

    (filtered.kept | "Doc rows" >> beam.Map(lambda kv: (kv[0], kv[1].to_row()))
     | "Write docs" >> output.WriteShards(output.join(staging, "docs"), DOC_SCHEMA, n_shards))
    (rejects | "Reject rows" >> beam.Map(lambda kv: (kv[0], kv[1].to_row()))
     | "Write rejects" >> output.WriteShards(output.join(staging, "rejects"), REJECT_SCHEMA, n_shards))
    (parsed[read.DEAD]
     | "Dead rows" >> beam.Map(lambda kv: (kv[0], kv[1].to_row()))
     | "Write dead letters" >> output.WriteShards(output.join(staging, "dead_letters"), DEAD_LETTER_SCHEMA, n_shards))


def run(cfg: CCConfig, beam_args: list[str] | None = None, overwrite: bool = False,
        max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    """Run the job to completion, publish its outputs, write stats.json, print the funnel; return stats."""
    cfg.validate()
    files = expand_inputs(cfg.input, cfg.paths_prefix, cfg.max_files)
    claim = claim_output(cfg.output, JOB, OUTPUTS + [STATS], [*files, *spec_items(cfg.input)],
                         overwrite, max_lease_age)
    log.info("CC job: %d input files -> %s", len(files), cfg.output)
    opts = pipeline_options(beam_args or [])
    with claim as out:
        t0 = time.time()
        p = make_pipeline(opts)
        build(p, cfg, files, out.stage())
        result = p.run()
        result.wait_until_finish()
        wall = time.time() - t0
        out.publish(OUTPUTS)
        cores = local_cores(opts)
        funnel = build_funnel(counters_of(result), [s.name for s in cfg.scorers], wall, cores)
        stats = {"job": "cc", "input_files": len(files), "config": _config_summary(cfg), **funnel}
        out.write(STATS, json.dumps(stats, indent=2, sort_keys=False).encode())
    print(format_funnel(funnel), flush=True)
    return stats


def _config_summary(cfg: CCConfig) -> dict:
    keys = ["exact_dedup", "near_dedup", "minhash_threshold", "minhash_perms", "minhash_ngram",
            "template_line_docs", "template_max_words",
            "template_line_docs_long", "line_dedup", "min_chars", "lid_model", "languages", "lid_threshold"]
    out = {k: getattr(cfg, k) for k in keys}
    out["languages"] = list(cfg.languages)
    out["quality_scorers"] = [s.name for s in cfg.scorers]
    return out
