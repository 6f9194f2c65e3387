"""The CommonCrawl source and its job: WET or WARC in, curated documents out, CCNet-style.

Stages (`source.CommonCrawlSource`, run by `pipeline.engine`): read -> exact document dedup -> MinHash
near-duplicate removal -> line dedup -> length -> language ID -> quality scorers -> sharded Parquet. Why
document-level dedup comes before line dedup is explained in `pipeline.dedup`.
"""
