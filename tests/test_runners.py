"""The same job graph must be submittable to Dataflow: built, pickled and turned into a job request up to
the point of submission (`--dry_run`), so that unpicklable code or a missing dependency shows up here."""
import os

import pytest

from helpers import sample_wet
from pipeline.cc.config import CCConfig
from pipeline.cc.source import CommonCrawlSource
from pipeline.engine.job import EngineSettings, build
from pipeline.runtime.runner import make_pipeline, pipeline_options

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cc_job_builds_for_dataflow(tmp_path):
    pytest.importorskip("apache_beam.runners.dataflow.internal.apiclient")
    wet = sample_wet(str(tmp_path / "a.warc.wet.gz")) and str(tmp_path / "a.warc.wet.gz")
    opts = pipeline_options([
        "--runner=DataflowRunner", "--project=example-project", "--region=europe-west4",
        "--temp_location=gs://example-bucket/tmp", "--dry_run=True",
        f"--setup_file={os.path.join(REPO, 'pyproject.toml')}"])
    p = make_pipeline(opts)
    source = CommonCrawlSource(CCConfig(input=wet, output="gs://example-bucket/cc-out"))
    build(p, source, [wet], "gs://example-bucket/cc-out/_work", "gs://example-bucket/cc-out/_staging",
          EngineSettings(), "fingerprint")
    result = p.run()
    job = result.job.proto
    assert job.name and job.type.name == "JOB_TYPE_BATCH"
    # every DoFn of the graph made it into the job request, pickled
    names = " ".join(t.unique_name for t in result.job.proto_pipeline.components.transforms.values())
    for step in ("Read", "exact_dedup: emit", "near_dedup.templates: decide", "near_dedup.bands: emit",
                 "line_dedup: decide", "Kept ids", "Final pass"):
        assert step in names


def test_default_runner_is_local_on_every_core():
    from apache_beam.options.pipeline_options import DirectOptions
    opts = pipeline_options([])
    assert opts.view_as(DirectOptions).direct_num_workers == (os.cpu_count() or 1)
