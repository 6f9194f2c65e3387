"""Running a Beam job: options from the command line, the local engine on every core when no runner is
named, and the run-publish-summarise sequence every curation job shares."""
from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline.runtime.progress import show_worker_progress


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the command line; with no runner named, Beam's local runner on every core."""
    opts = PipelineOptions(beam_args)
    if is_local(opts):
        direct = opts.view_as(DirectOptions)
        if not any(a.startswith("--direct_num_workers") for a in beam_args):
            direct.direct_num_workers = os.cpu_count() or 1
        if not any(a.startswith("--direct_running_mode") for a in beam_args):
            direct.direct_running_mode = "multi_processing" if direct.direct_num_workers > 1 else "in_memory"
    return opts


def is_local(opts: PipelineOptions) -> bool:
    return opts.view_as(StandardOptions).runner in (None, "DirectRunner", "direct", "FnApiRunner")


def local_cores(opts: PipelineOptions) -> int | None:
    return opts.view_as(DirectOptions).direct_num_workers if is_local(opts) else None


def make_pipeline(opts: PipelineOptions) -> beam.Pipeline:
    """With no runner named, the DirectRunner's batch engine (FnApiRunner) is used directly: the
    DirectRunner would first try to download the Prism runner, which an offline machine cannot."""
    show_worker_progress()
    if opts.view_as(StandardOptions).runner is None:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return beam.Pipeline(runner=FnApiRunner(), options=opts)
    return beam.Pipeline(options=opts)
