"""Running a Beam job: options from the command line, the local engine on every core when no runner is
named, and `run_graph`, the build-run-count sequence every Beam job shares (each job then publishes its
claimed output and writes its summary)."""
from __future__ import annotations

import argparse
import functools
import os

import apache_beam as beam
from apache_beam.options import pipeline_options as beam_options
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline.runtime.progress import show_worker_progress


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the command line; with no runner named, Beam's local runner on every core. An
    argument no Beam option takes is a ValueError (Beam itself would only warn and drop it)."""
    unknown = unknown_beam_args(beam_args)
    if unknown:
        raise ValueError(f"not Beam pipeline options: {' '.join(unknown)}")
    opts = PipelineOptions(beam_args)
    if is_local(opts):
        direct = opts.view_as(DirectOptions)
        if not any(a.startswith("--direct_num_workers") for a in beam_args):
            direct.direct_num_workers = os.cpu_count() or 1
        if not any(a.startswith("--direct_running_mode") for a in beam_args):
            direct.direct_running_mode = "multi_processing" if direct.direct_num_workers > 1 else "in_memory"
    return opts


@functools.lru_cache(maxsize=1)
def _beam_parser() -> argparse.ArgumentParser:
    """A parser of every option Beam's PipelineOptions classes register, built as Beam's own
    PipelineOptions.get_all_options builds it; errors raise instead of exiting."""
    parser = beam_options._BeamArgumentParser(allow_abbrev=False, add_help=False, exit_on_error=False,
                                              conflict_handler="resolve")
    classes: dict[str, type] = {}
    pending = [PipelineOptions]
    while pending:
        for cls in pending.pop().__subclasses__():
            classes.setdefault(str(cls), cls)
            pending.append(cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)  # the only way Beam offers to learn its options
    return parser


def beam_option_names() -> list[str]:
    """Every option string Beam's pipeline options accept (`--runner`, `--direct_num_workers`, ...)."""
    return [s for action in _beam_parser()._actions for s in action.option_strings]


def unknown_beam_args(beam_args: list[str]) -> list[str]:
    """The arguments among `beam_args` that no Beam pipeline option takes, in order; a Beam option given
    a value it refuses (`--direct_num_workers x`) is a ValueError."""
    try:
        _, unknown = _beam_parser().parse_known_args(list(beam_args))
    except argparse.ArgumentError as exc:
        raise ValueError(str(exc)) from None
    return unknown


def is_local(opts: PipelineOptions) -> bool:
    return opts.view_as(StandardOptions).runner in (None, "DirectRunner", "direct", "FnApiRunner")


def local_cores(opts: PipelineOptions) -> int | None:
    return opts.view_as(DirectOptions).direct_num_workers if is_local(opts) else None


def make_pipeline(opts: PipelineOptions) -> beam.Pipeline:
    """With no runner named, the DirectRunner's batch engine (FnApiRunner) is used directly: the
    DirectRunner would first try to download the Prism runner, which an offline machine cannot."""
    show_worker_progress()
    if is_local(opts):
        from pipeline.runtime.memory import one_malloc_arena
        one_malloc_arena()
    if opts.view_as(StandardOptions).runner is None:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return beam.Pipeline(runner=FnApiRunner(), options=opts)
    return beam.Pipeline(options=opts)


def run_graph(opts: PipelineOptions, build) -> tuple[dict[str, int], float]:
    """Build the graph with `build(pipeline)`, run it to completion; return its counters and wall time."""
    import time

    from pipeline.runtime.funnel import counters_of
    t0 = time.time()
    p = make_pipeline(opts)
    build(p)
    result = p.run()
    result.wait_until_finish()
    return counters_of(result), time.time() - t0
