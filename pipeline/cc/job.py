"""The CC job: `CommonCrawlSource` on the curation engine (`pipeline.engine`), with the CC funnel."""
from __future__ import annotations

from pipeline.cc.config import CCConfig
from pipeline.cc.funnel import build_funnel
from pipeline.cc.source import CommonCrawlSource
from pipeline.engine.job import EngineSettings
from pipeline.engine.job import run as run_engine
from pipeline.inputs import spec_items
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS

JOB = "pipeline cc"


def run(cfg: CCConfig, beam_args: list[str] | None = None, overwrite: bool = False,
        max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    """Run the job to completion, publish its outputs, write stats.json, print the funnel; return stats."""
    cfg.validate()
    source = CommonCrawlSource(cfg)
    files = source.files(cfg.input, cfg.max_files)
    settings = EngineSettings(chunk_docs=cfg.chunk_docs, output_shards=cfg.output_shards, fresh=cfg.fresh)
    quality = [s.name for s in cfg.scorers]
    return run_engine(source, files, cfg.output, [*files, *spec_items(cfg.input)], beam_args, settings,
                      overwrite, max_lease_age, config=cfg.summary(),
                      funnel=lambda c, wall, cores: build_funnel(c, [s.stage for s in source.dedup_steps()],
                                                                 quality, wall, cores))
