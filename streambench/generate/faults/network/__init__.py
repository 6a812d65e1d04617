"""Network faults: a TCP fault proxy between a run's clients and its target.

- :mod:`.plan`: the seeded, pure decisions (windows, which connections, draws);
- :mod:`.shape`: what a fault does to the bytes of one direction (sans-I/O);
- :mod:`.truth`: the ground-truth rows, one per window that did something;
- :mod:`.link` and :mod:`.proxy`: the asyncio pump that only moves bytes;
- :mod:`.child`: the proxy in a child process of a run (``target.via: proxy``);
- :mod:`.commands`: ``streambench proxy``, the standalone mode.

docs/network-faults.md is the reference.
"""
