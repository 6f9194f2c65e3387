"""Demo and test data, generated deterministically by code (no download, no third-party text): a crawl
in CommonCrawl's WET and WARC formats (`crawl`), a Wikipedia dump excerpt with the pages it cites for
the reference classifier (`wiki_citations`), and a sample of each of the six other sources in its real
download format (`arxiv`, `books`, `c4`, `github`, `stackexchange`, `wikipedia`), where
`<source>.write_sample(directory)` writes one and returns the `--input` to give that source's job.

They are no part of any job: nothing under `pipeline/`, `classifier/`, `tokenizer/` or `train/` imports
them, and `tests/test_packaging.py` checks that the wheel still carries them for `smallgiant demo`.
"""
