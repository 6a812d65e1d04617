"""WebSocket: websockets' sans-I/O protocol on a lean asyncio pump (:mod:`.pump`)."""
