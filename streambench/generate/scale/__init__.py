"""One run over many processes: shards, local worker processes, Dask clusters.

Words, as used in this package and its docs:

* a **shard** is a slice of the run: global connections ``[conn_offset,
  conn_offset + connections)`` with their schedules, run by the single-process
  engine (:mod:`.shards`). ``ShardSpec.worker`` is the shard's number;
* a **worker** is what runs one shard: a local process (:mod:`.local`) or a
  task on a Dask worker (:mod:`.cluster`). ``--workers N`` asks for N shards,
  one per worker; the manifest lists them under ``workers``, one entry per
  shard with where it ran;
* the **driver** is the process the user started: it owns the manifest, the
  embedded target and the common start time.
"""
