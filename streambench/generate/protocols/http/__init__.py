"""HTTP request/response: a lean keep-alive engine (httptools) and an aiohttp engine."""
