"""The six sources of the mixture besides CommonCrawl, each a Beam job with the CC job's output layout
(`docs/`, `rejects/`, `dead_letters/`, `stats.json`) and funnel, so the tokenizer treats all seven alike.

`base.Source` is what a source implements; `job` runs any of them. `SOURCES` names each source's class,
imported only when its job runs.
"""
from __future__ import annotations

import importlib

SOURCES = {
    "wikipedia": "pipeline.sources.wikipedia:WikipediaSource",
    "github": "pipeline.sources.github:GithubSource",
    "books": "pipeline.sources.books:BooksSource",
    "arxiv": "pipeline.sources.arxiv:ArxivSource",
    "stackexchange": "pipeline.sources.stackexchange:StackExchangeSource",
    "c4": "pipeline.sources.c4:C4Source",
}


def source_class(name: str):
    module, cls = SOURCES[name].split(":")
    return getattr(importlib.import_module(module), cls)
