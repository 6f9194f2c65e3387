"""The job every source but CommonCrawl runs from its own command: the engine (`pipeline.engine.job`)
over the source's files, with the options every source job shares."""
from __future__ import annotations

from pipeline.engine.job import EngineSettings
from pipeline.engine.job import run as run_engine
from pipeline.inputs import spec_items
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS
from pipeline.sources.base import Source


def run(source: Source, input_spec: str, out: str, beam_args: list[str] | None = None,
        output_shards: int | None = None, max_files: int | None = None, overwrite: bool = False,
        max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS, chunk_docs: int | None = None,
        fresh: bool = False) -> dict:
    """Run the source's job to completion, publish its outputs, write stats.json, print the funnel."""
    files = source.files(input_spec, max_files)
    settings = EngineSettings(output_shards=output_shards, fresh=fresh)
    if chunk_docs:
        settings.chunk_docs = chunk_docs
    return run_engine(source, files, out, [*files, *spec_items(input_spec)], beam_args, settings, overwrite,
                      max_lease_age)
