"""Whole-run deduplication steps of the curation engine (`pipeline.engine.steps.WholeRunStep`): exact
document copies (`exact`), MinHash near copies (`near`), CCNet's repeated lines (`lines`) and book-level
overlap (`books`). Each keeps, of every group of copies, the document with the smallest key: the first in
input order, whatever the runner's order of work.

Why CommonCrawl's document dedup comes before line dedup, unlike CCNet. CCNet removes every copy of a
repeated line first. That is what kills boilerplate, but on its own it also deletes the original of every
duplicated page together with its copies (all their lines repeat), and a near-duplicate keeps its edited
lines, so MinHash run afterwards compares fragments. Here documents are deduplicated first, on the page as
crawled, and line dedup then runs over the surviving pages only: a line repeated across pages that are
not copies of each other is boilerplate.
"""
