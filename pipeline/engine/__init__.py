"""The curation engine: the one job shape every source runs, CommonCrawl included.

A source (`pipeline.sources.base.Source`) is an ordered list of stages: per-document steps applied while
reading (`steps`), whole-run steps (`dedup_steps`, e.g. exact, near and line dedup) and per-document steps
after them (`final_steps`, e.g. length, language ID, quality). The engine (`job`) runs them so that no
runner ever holds the corpus:

1. read pass, one task per input file: documents are read, the leading steps applied, and the result
   written once to the work area (`spill`) in units of `chunk_docs` rows; nothing but a small description
   of each unit leaves the task. A file whose read pass completed is not read again by a resumed run.
2. whole-run steps, each one or more rounds (`rounds`): a pass over each unit emits compact entries
   (64-bit hashes and integer document keys, packed in NumPy arrays), a shuffle groups them by hash bucket,
   and a decision per bucket (sorted with NumPy) goes back to the units it concerns, again packed.
3. final pass, one task per output shard: each unit's documents stream from the work area, meet their
   decisions, go through the final steps and are written as Parquet.

Documents never ride a shuffle; what does is a few bytes per document and per line.
"""
