"""`classifier score`: a Beam job that adds the reference probability (`reference_score`) to the metadata
of every document of Parquet files in the document schema, keeping every document and the sharding."""
from __future__ import annotations

import io
import json
import logging

import apache_beam as beam
import pyarrow.parquet as pq

from classifier.scorer import ReferenceScorer
from pipeline.runtime import output
from pipeline.runtime.counters import inc
from pipeline.runtime.funnel import counters_of
from pipeline.runtime.runner import make_pipeline, pipeline_options
from pipeline.inputs import expand_inputs, open_stream, spec_items
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output
from pipeline.schema import DOC_SCHEMA, Document

log = logging.getLogger(__name__)


def _read_parquet(item):
    index, path = item
    with open_stream(path) as f:
        table = pq.read_table(io.BytesIO(f.read()))
    for row_index, row in enumerate(table.to_pylist()):
        inc("score.docs_in")
        yield f"{index:06d}:{row_index:09d}", Document.from_row(row)


class _Score(beam.DoFn):
    def __init__(self, scorer: ReferenceScorer):
        self.scorer = scorer

    def setup(self):
        self.scorer.load()

    def process(self, kv):
        key, doc = kv
        doc.metadata.update(self.scorer.score(doc))
        inc("score.docs_out")
        if self.scorer.reject_reason(doc, doc.metadata) is None:
            inc("score.above_threshold")
        yield key, doc.to_row()


def run(model_dir: str, input_glob: str, out: str, beam_args: list[str] | None = None, overwrite: bool = False,
        max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    files = expand_inputs(input_glob)
    claim = claim_output(out, "classifier score", ["docs", "summary.json"],
                         [*files, *spec_items(input_glob), model_dir], overwrite, max_lease_age)
    scorer = ReferenceScorer(model_dir)
    with claim as claimed:
        p = make_pipeline(pipeline_options(beam_args or []))
        (p | "Files" >> beam.Create(list(enumerate(files))) | "Spread" >> beam.Reshuffle()
         | "Read" >> beam.FlatMap(_read_parquet)
         | "Score" >> beam.ParDo(_Score(scorer))
         | "Write" >> output.WriteShards(claimed.stage("docs"), DOC_SCHEMA, len(files)))
        result = p.run()
        result.wait_until_finish()
        claimed.publish(["docs"])
        c = counters_of(result)
        summary = {"files": len(files), "documents_in": c.get("score.docs_in", 0),
                   "documents_out": c.get("score.docs_out", 0), "above_threshold": c.get("score.above_threshold", 0),
                   "threshold": scorer.threshold}
        claimed.write("summary.json", json.dumps(summary, indent=2).encode())
    print(f"scored {summary['documents_out']:,} of {summary['documents_in']:,} documents; "
          f"{summary['above_threshold']:,} at or above the threshold {scorer.threshold:.4f}")
    return summary
