"""The end-to-end demo on the embedded samples. For now: the CommonCrawl curation job on a small crawl
(`pipeline.sample_crawl`), then the Wikipedia-reference classifier's whole path on a dump excerpt and a
crawl that cites into it (`classifier.sample_data`): dump -> urls -> join -> train -> score."""
from __future__ import annotations

import os


def run_demo(output: str, beam_args: list[str] | None = None) -> int:
    from classifier.dataset import DatasetConfig, run as build_dataset
    from classifier.model import train
    from classifier.sample_data import write_sample as write_wiki_sample
    from classifier.score import run as score
    from pipeline.cc.config import CCConfig
    from pipeline.cc.job import run as run_cc
    from pipeline.sample_crawl import write_sample as write_crawl_sample

    crawl_dir = os.path.join(output, "sample_crawl")
    os.makedirs(crawl_dir, exist_ok=True)
    wet = os.path.join(crawl_dir, "CC-SAMPLE-00000.warc.wet.gz")
    print(f"== CommonCrawl job: {len(write_crawl_sample(wet))} pages in {wet}")
    stats = run_cc(CCConfig(input=wet, output=os.path.join(output, "cc")), beam_args)

    wiki_dir = os.path.join(output, "sample_wiki")
    sample = write_wiki_sample(wiki_dir)
    print(f"== reference classifier: a dump excerpt citing {len(sample.cited_urls)} URLs, a crawl of "
          f"{len(sample.crawl)} pages")
    build_dataset(DatasetConfig(output=os.path.join(output, "refdata"), wikipedia=os.path.join(wiki_dir, "*.xml"),
                                crawl=os.path.join(wiki_dir, "crawl.warc.wet.gz")), beam_args)
    report = train(os.path.join(output, "refdata"), os.path.join(output, "refmodel"))
    t = report["test"]
    print(f"classifier test split: ROC-AUC {t['roc_auc']:.3f}, precision {t['precision']:.3f}, recall "
          f"{t['recall']:.3f} at threshold {report['threshold']:.3f}; plot in {output}/refmodel/threshold.png")
    score(os.path.join(output, "refmodel"), os.path.join(output, "cc", "docs", "*.parquet"),
          os.path.join(output, "cc_scored"), beam_args)
    print(f"curated documents: {os.path.join(output, 'cc', 'docs')} ({stats['documents_out']} kept); "
          f"with reference scores: {os.path.join(output, 'cc_scored', 'docs')}")
    return 0
