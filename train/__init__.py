"""The PyTorch LLaMA trainer (torchrun, FSDP2, exact resume). Reads token shards; imports neither Beam
nor fastText, so it runs where only PyTorch is installed."""
