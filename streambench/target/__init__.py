"""streambench.target: the built-in system under test (docs/target.md).

- :func:`start_server` -> :class:`RunningServer`: the WebSocket + HTTP echo
  server with fault knobs, in this process (``server``, ``ws``, ``http``).
- :class:`EmbeddedTarget`: the same server in a child process, for scenarios
  with ``target.url: embedded`` (``embedded``).
- :class:`ServerFaultPlan`: the pure, seeded fault decisions (``faults``).
- ``streambench serve`` (``commands``).

Names are imported on first use, so ``streambench --help`` does not pay for aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streambench.target.embedded import EmbeddedTarget
    from streambench.target.knobs import ServerFaultPlan
    from streambench.target.server import RunningServer, start_server

__all__ = ["EmbeddedTarget", "RunningServer", "ServerFaultPlan", "start_server"]

_HOMES = {
    "EmbeddedTarget": "streambench.target.embedded",
    "ServerFaultPlan": "streambench.target.knobs",
    "RunningServer": "streambench.target.server",
    "start_server": "streambench.target.server",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'streambench.target' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
