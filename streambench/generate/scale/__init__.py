"""One run over many processes: shards, local worker processes, Dask clusters."""
