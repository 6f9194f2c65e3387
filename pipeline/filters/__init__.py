"""Per-document filter steps (`pipeline.sources.base.Step`) shared by sources: length, language ID and
the quality scorers' slot. Every rejected document keeps the scores it was judged by."""
