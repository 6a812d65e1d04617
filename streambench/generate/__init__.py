"""Load generation: scenario in, captured events out.

The layout follows the data flow (docs/architecture in DESIGN.md)::

    engine/      one run in one process: run (entry and lifecycle), drive (open,
                 send, receive, flush, sweep), context (what a client is handed),
                 schedule (pure, seeded arrivals), replies (correlation),
                 progress (live numbers), health (the run's own health rows);
                 a run started from a notebook has a process of its own
                 (streambench.background, streambench.run_process)
    protocols/   the client seam (base.py) and one package per protocol:
                 websocket/ (sans-I/O websockets on a lean pump), mqtt/ (codec,
                 wire and aiomqtt engines), http/ (lean and aiohttp engines), sse
    faults/      client-side failure injection: the pure, seeded plan and the
                 injector that applies it to a client
    scale/       one run over many processes: shards, local processes, Dask

Dependencies point one way: engine -> protocols -> engine.context; faults and
scale build on engine. Nothing here imports :mod:`streambench.analyze`.
"""
