"""`classifier score`: a Beam job that adds the reference probability (`reference_score`) to the metadata
of every document of Parquet files in the document schema, keeping every document and the sharding."""
from __future__ import annotations

import io
import json
import logging

import apache_beam as beam
import pyarrow.parquet as pq

from classifier.scorer import ReferenceScorer
from pipeline.runtime.output import RowBatches
from pipeline.runtime.counters import inc
from pipeline.runtime.runner import pipeline_options, run_graph
from pipeline.inputs import expand_inputs, join, open_stream, spec_items
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output
from pipeline.schema import DOC_SCHEMA, Document

log = logging.getLogger(__name__)


class _ScoreFile(beam.DoFn):
    """(file index, path) -> the file's documents with their scores, written as `docs/part-<index>.parquet`,
    streaming by row group: documents never ride a shuffle."""

    def __init__(self, scorer: ReferenceScorer, directory: str):
        self.scorer, self.directory = scorer, directory

    def setup(self):
        self.scorer.load()

    def process(self, item):
        index, path = item
        writer = RowBatches(join(self.directory, f"part-{index:05d}.parquet"), DOC_SCHEMA, 2000)
        with open_stream(path) as f:
            parquet = pq.ParquetFile(io.BytesIO(f.read()))
        for batch in parquet.iter_batches(batch_size=512):
            for row in batch.to_pylist():
                inc("score.docs_in")
                doc = Document.from_row(row)
                doc.metadata.update(self.scorer.score(doc))
                inc("score.docs_out")
                if self.scorer.reject_reason(doc, doc.metadata) is None:
                    inc("score.above_threshold")
                writer.add(doc.to_row())
        writer.close()
        yield index


def run(model_dir: str, input_glob: str, out: str, beam_args: list[str] | None = None, overwrite: bool = False,
        max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    files = expand_inputs(input_glob)
    claim = claim_output(out, "classifier score", ["docs", "summary.json"],
                         [*files, *spec_items(input_glob), model_dir], overwrite, max_lease_age)
    scorer = ReferenceScorer(model_dir)
    with claim as claimed:
        c, _ = run_graph(pipeline_options(beam_args or []), lambda p: (
            p | "Files" >> beam.Create(list(enumerate(files))) | "Spread" >> beam.Reshuffle()
            | "Score files" >> beam.ParDo(_ScoreFile(scorer, claimed.stage("docs")))))
        claimed.publish(["docs"])
        summary = {"files": len(files), "documents_in": c.get("score.docs_in", 0),
                   "documents_out": c.get("score.docs_out", 0), "above_threshold": c.get("score.above_threshold", 0),
                   "threshold": scorer.threshold}
        claimed.write("summary.json", json.dumps(summary, indent=2).encode())
    print(f"scored {summary['documents_out']:,} of {summary['documents_in']:,} documents; "
          f"{summary['above_threshold']:,} at or above the threshold {scorer.threshold:.4f}")
    return summary
