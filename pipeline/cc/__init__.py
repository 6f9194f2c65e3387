"""The CommonCrawl curation job (Apache Beam): WET or WARC in, curated documents out, CCNet-style.

Stages: read -> exact document dedup -> MinHash near-duplicate removal -> line dedup -> length ->
language ID -> quality scorers -> sharded Parquet. Why document-level dedup comes before line dedup is
explained in `pipeline.cc.dedup`.
"""
