"""Curation jobs: raw crawl and source dumps in, clean documents out.

This package holds the document schema every job writes (`pipeline.schema`), the Beam-free building
blocks (WARC/WET reading, line hashing, MinHash signatures, language ID, the quality-scorer slot) and,
under `pipeline.cc`, the Apache Beam CommonCrawl job. Importing this package does not import Beam; only
the job modules do.
"""
