"""Zero- and few-shot evaluation as the LLaMA-1 paper (section 3) scores its benchmarks.

`tasks` reads the benchmarks' published file layouts into two example types, `scoring` batches
log-likelihoods and applies the paper's normalisations, `generation` decodes greedily for exact match,
`harness` runs tasks and formats results beside the paper's figures (`paper`), `in_loop` evaluates
during training, `continuation` builds the demo's held-out continuation task, and `cli` is
`smallgiant eval`. Importing this package imports neither torch nor anything else heavy.
"""
