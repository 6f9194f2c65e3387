"""SentencePiece BPE tokenizer training and the job that writes token shards in a manifest's mixture.

- manifest: data-mixture manifests (data_manifests/*.yaml): sources, shares, epochs, paths; validation
- sample: the training sample in the mixture's shares and the held-out set, streamed from Parquet
- train: `smallgiant tokenizer train`: SentencePiece BPE with LLaMA-1's settings, atomic output
- hf: the Hugging Face LlamaTokenizerFast directory that encodes exactly as SentencePiece
- report: bytes per token on held-out documents, per source and per language
- cli: the `smallgiant tokenizer` command and its `train` step
- mixture: how many tokens each source contributes and how often each document repeats
- shard_format: the token shard format, its writer and the trainer's reader
- shards, shards_cli: `smallgiant tokenizer shards`, the Beam job that writes the shards
- shard_work: the shard job's work area: each row group's tokens encoded once, read back by reference
- shards_report: realised vs target shares and epochs, and the job's printed summary
- plan: `shards --plan`, the size and cost of a build before tokenizing everything
"""
