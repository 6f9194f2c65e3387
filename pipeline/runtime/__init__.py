"""What every curation job shares: Beam counters and timings (`counters`), deterministic atomic Parquet
output (`output`), worker progress lines (`progress`) and running a pipeline (`runner`)."""
