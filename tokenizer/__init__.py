"""SentencePiece BPE tokenizer training and the job that writes token shards in a manifest's mixture."""
