"""smallgiant: LLaMA-1's pretraining recipe end to end. This package holds only the `smallgiant` command;
the work lives in `pipeline` (curation jobs), `classifier`, `tokenizer` and `train`."""

__version__ = "0.1.0"
