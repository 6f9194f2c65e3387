"""Curation jobs: raw crawl and source dumps in, clean documents out.

This package holds the document schema every job writes (`pipeline.schema`), the Beam-free building
blocks (WARC/WET reading, line hashing, MinHash signatures, language ID, the quality-scorer slot),
`pipeline.runtime` (counters, Parquet output, progress, running a Beam job), `pipeline.cc` (the Apache
Beam CommonCrawl job), `pipeline.lm` (the perplexity filter's language models) and `pipeline.sources`
(the jobs of the other six sources). Importing this package does not import Beam; only the job modules do.
"""
