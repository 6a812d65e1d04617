"""Webhook alerts for anomalies, live during a run and at its end.

:class:`Notifier` posts JSON in the background of the caller's event loop.
:meth:`Notifier.notify` only puts the batch on a bounded queue and returns at
once, so a slow or dead webhook can never slow a run; a full queue drops the
batch (counted in ``stats``), failures are logged and counted, never raised.
Deliveries are retried on connection errors, timeouts, 429 and 5xx, waiting the
delays of ``backoff()`` (an injectable generator factory, exponential by
default); other 4xx answers are not retried.

Body styles: ``json`` (``{"source", "run_id", "final", "anomalies": [...]}``,
each anomaly as printed by ``streambench anomalies --json``), ``slack``
(``text`` plus mrkdwn ``blocks``) and ``teams`` (an Office 365 MessageCard).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

import aiohttp

from streambench.analyze.types import Anomaly, iso
from streambench.logs import get_logger

log = get_logger(__name__)
Style = Literal["json", "slack", "teams"]
_COLOURS = {"info": "2EB886", "warning": "DAA038", "error": "D70000", "critical": "8B0000"}


def exponential_backoff(
    initial: float = 0.5, factor: float = 2.0, maximum: float = 10.0
) -> Iterator[float]:
    """0.5, 1, 2, 4 ... seconds, capped at ``maximum``; endless (retries bound it)."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, maximum)


def _line(a: Anomaly) -> str:
    return f"[{a.severity}] {a.rule} ({a.kind}) {iso(a.start)} -> {iso(a.end)}: {a.fingerprint}"


def render_body(
    anomalies: list[Anomaly], *, style: Style, run_id: str | None, final: bool
) -> dict[str, Any]:
    """The webhook body for one batch of anomalies in the given style."""
    title = f"streambench: {len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}" + (
        f" in run {run_id}" if run_id else "") + (" (run finished)" if final else "")  # fmt: skip
    if style == "slack":
        lines = "\n".join(f"• {_line(a)}" for a in anomalies)
        return {"text": title, "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": lines[:2900] or "none"}},
        ]}  # fmt: skip
    if style == "teams":
        worst = max((a.severity for a in anomalies), key=list(_COLOURS).index, default="info")
        facts = [{"name": a.rule, "value": _line(a)} for a in anomalies]
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions",
                "summary": title, "title": title, "themeColor": _COLOURS[worst],
                "sections": [{"facts": facts}]}  # fmt: skip
    return {"source": "streambench", "run_id": run_id, "final": final,
            "anomalies": [a.to_dict() for a in anomalies]}  # fmt: skip


class Notifier:
    """Posts anomaly batches to ``url`` from a background task of the running loop.

    Use it as ``async with Notifier(url) as notifier: ... notifier.notify(found)``
    (or :meth:`start` / :meth:`aclose`). ``stats`` counts ``sent``, ``failed``,
    ``dropped`` batches and ``retries``.
    """

    def __init__(
        self,
        url: str,
        *,
        style: Style = "json",
        retries: int = 3,
        backoff: Callable[[], Iterator[float]] = exponential_backoff,
        timeout: float = 5.0,
        queue_size: int = 100,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.style: Style = style
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.stats = {"sent": 0, "failed": 0, "dropped": 0, "retries": 0}
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._unfinished = 0  # queued or being delivered

    async def __aenter__(self) -> Notifier:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start the delivery task; call from inside the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._deliver_forever(), name=f"streambench.notify[{self.url}]"
            )

    def notify(
        self, anomalies: Anomaly | Iterable[Anomaly], *, run_id: str | None = None,
        final: bool = False,
    ) -> bool:  # fmt: skip
        """Queue one batch; returns at once. False if it was dropped (queue full)."""
        batch = [anomalies] if isinstance(anomalies, Anomaly) else list(anomalies)
        if not batch and not final:
            return True
        body = render_body(batch, style=self.style, run_id=run_id, final=final)
        try:
            self._queue.put_nowait(body)
            self._unfinished += 1
        except asyncio.QueueFull:
            self.stats["dropped"] += 1
            log.warning("webhook queue full; dropped %d anomalies for %s", len(batch), self.url)
            return False
        return True

    async def aclose(self, *, grace: float = 5.0) -> None:
        """Deliver what is queued (for at most ``grace`` seconds), then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), grace)
        except TimeoutError:
            self.stats["dropped"] += self._unfinished  # still queued or mid-retry
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _deliver_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:
            while True:
                body = await self._queue.get()
                try:
                    await self._deliver(session, body)
                finally:
                    self._unfinished -= 1
                    self._queue.task_done()

    async def _deliver(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        delays = self.backoff()
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
                await asyncio.sleep(next(delays))
            try:
                async with session.post(self.url, json=body) as response:
                    if response.status < 400:
                        self.stats["sent"] += 1
                        return
                    reason = f"HTTP {response.status}"
                    if response.status != 429 and response.status < 500:
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
        self.stats["failed"] += 1
        log.warning("webhook %s failed: %s", self.url, reason)


def post_anomalies(
    url: str, anomalies: Iterable[Anomaly], *, run_id: str | None = None,
    style: Style = "json", timeout: float = 10.0,
) -> dict[str, int]:  # fmt: skip
    """Synchronous one-shot delivery (end of a run, CLI): at most ``timeout`` s, never raises."""

    async def once() -> dict[str, int]:
        notifier = Notifier(url, style=style, timeout=min(timeout, 5.0))
        async with notifier:
            notifier.notify(list(anomalies), run_id=run_id, final=True)
            await notifier.aclose(grace=timeout)
        return notifier.stats

    return asyncio.run(once())
