"""The end-to-end demo on the embedded sample: for now the CommonCrawl curation job, on a small crawl
written by `pipeline.sample_crawl`, printing its funnel."""
from __future__ import annotations

import os


def run_demo(output: str, beam_args: list[str] | None = None) -> int:
    from pipeline.cc.config import CCConfig
    from pipeline.cc.job import run
    from pipeline.sample_crawl import write_sample

    crawl_dir = os.path.join(output, "sample_crawl")
    os.makedirs(crawl_dir, exist_ok=True)
    wet = os.path.join(crawl_dir, "CC-SAMPLE-00000.warc.wet.gz")
    pages = write_sample(wet)
    print(f"wrote {len(pages)} pages to {wet}")
    stats = run(CCConfig(input=wet, output=os.path.join(output, "cc")), beam_args)
    print(f"curated documents: {os.path.join(output, 'cc', 'docs')} ({stats['documents_out']} kept)")
    return 0
