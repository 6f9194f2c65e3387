"""CCNet's n-gram language-model filter: per-language SentencePiece + 5-gram modified Kneser-Ney KenLM
models trained on Wikipedia, document perplexity, and head / middle / tail buckets from perplexity
cutoffs computed on a crawl sample. Training runs KenLM's `lmplz` and `build_binary`; scoring uses the
`kenlm` Python module."""
