"""Webhook and email alerts for anomalies, live during a run and at its end.

:class:`Notifier` posts JSON (or sends mail) in the background of the caller's
event loop.
:meth:`Notifier.notify` only puts the batch on a bounded queue and returns at
once, so a slow or dead webhook can never slow a run; a full queue drops the
batch (counted in ``stats``), failures are logged and counted, never raised.
Deliveries are retried on connection errors, timeouts, 429 and 5xx, waiting the
delays of ``backoff()`` (an injectable generator factory, exponential by
default); other 4xx answers are not retried.

Body styles: ``json`` (``{"source", "run_id", "final", "anomalies": [...]}``,
each anomaly as printed by ``streambench anomalies --json``), ``slack``
(``text`` plus mrkdwn ``blocks``) and ``teams`` (an Office 365 MessageCard).

``email``, the style of every ``smtp://`` (STARTTLS) or ``smtps://`` (TLS)
destination (:mod:`streambench.analyze.mail`): one message per batch, the title
as subject, a line per anomaly and the ``json`` body attached. The same queue,
retries and backoff; a delivery runs in a daemon thread of its own (``smtplib``
blocks), so a mail server that never answers holds that thread for at most
``timeout`` per attempt and never the caller's loop, nor its exit. Retried: a
connection that fails, times out or hangs up, and 4xx replies; not retried: 5xx
replies (bad credentials, refused recipients) and TLS failures.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from email.message import EmailMessage
from typing import Any, Literal

import aiohttp

from streambench.analyze import mail
from streambench.analyze.types import Anomaly, iso
from streambench.errors import ConfigError
from streambench.logs import get_logger

log = get_logger(__name__)
Style = Literal["json", "slack", "teams", "email"]
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


def title_of(anomalies: list[Anomaly], *, run_id: str | None, final: bool) -> str:
    """``streambench: 2 anomalies in run R (run finished)``: a webhook's title, a mail's subject."""
    return f"streambench: {len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}" + (
        f" in run {run_id}" if run_id else "") + (" (run finished)" if final else "")  # fmt: skip


def render_body(
    anomalies: list[Anomaly], *, style: Style, run_id: str | None, final: bool
) -> dict[str, Any]:
    """The webhook body for one batch of anomalies in the given style (``email``: the
    ``json`` body, which an email carries as its attachment)."""
    title = title_of(anomalies, run_id=run_id, final=final)
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


def render_mail(anomalies: list[Anomaly], *, destination: mail.MailDestination,
                run_id: str | None, final: bool) -> EmailMessage:
    """The email for one batch: title as subject, a line per anomaly, the JSON attached."""
    return mail.render(title_of(anomalies, run_id=run_id, final=final),
                       [_line(a) for a in anomalies], anomalies, destination=destination,
                       body=render_body(anomalies, style="json", run_id=run_id, final=final))


def in_daemon_thread(work: Callable[[], None], *, name: str) -> asyncio.Future[None]:
    """Run blocking ``work`` on a daemon thread of its own; await its outcome.

    Cancelling the await abandons the thread (it ends by its own timeouts) and
    nothing waits for it: not the loop, not the interpreter's exit.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():  # abandoned
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:  # the loop has closed meanwhile: nobody is waiting
            return

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


class Notifier:
    """Posts anomaly batches to ``url`` (or mails them) from a background task of the
    running loop.

    Use it as ``async with Notifier(url) as notifier: ... notifier.notify(found)``
    (or :meth:`start` / :meth:`aclose`). ``stats`` counts ``sent``, ``failed``,
    ``dropped`` batches and ``retries``. An ``smtp://`` or ``smtps://`` URL
    (:class:`~streambench.analyze.mail.MailDestination`) sends email (style
    ``email``), ``ssl_context`` being what its TLS trusts (None: the system's
    roots); raises ConfigError for a destination and style that do not go together.
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
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.mail = (mail.MailDestination.from_url(url)
                     if url.partition("://")[0].lower() in mail.SCHEMES else None)
        if self.mail is not None and style not in ("json", "email"):
            raise ConfigError(f"alerts: style {style} is for webhooks; an smtp:// destination "
                              "gets email (style email)")
        if self.mail is None and style == "email":
            raise ConfigError("alerts: style email needs an smtp:// or smtps:// destination")
        self.style: Style = "email" if self.mail is not None else style
        self.ssl_context = ssl_context
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.stats = {"sent": 0, "failed": 0, "dropped": 0, "retries": 0}
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)  # bodies or emails
        self._session: aiohttp.ClientSession | None = None
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
        body: Any = (render_body(batch, style=self.style, run_id=run_id, final=final)
                     if self.mail is None else
                     render_mail(batch, destination=self.mail, run_id=run_id, final=final))
        try:
            self._queue.put_nowait(body)
            self._unfinished += 1
        except asyncio.QueueFull:
            self.stats["dropped"] += 1
            log.warning("alert queue full; dropped %d anomalies for %s", len(batch), self.url)
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
        if self.mail is None:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout, headers=self.headers)
        try:
            while True:
                body = await self._queue.get()
                try:
                    await self._deliver(body)
                finally:
                    self._unfinished -= 1
                    self._queue.task_done()
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None

    async def _deliver(self, body: Any) -> None:
        """Attempts with backoff until delivered, refused for good, or out of retries."""
        delays = self.backoff()
        attempt = self._post if self.mail is None else self._send_mail
        for number in range(self.retries + 1):
            if number:
                self.stats["retries"] += 1
                await asyncio.sleep(next(delays))
            outcome = await attempt(body)
            if outcome is None:
                self.stats["sent"] += 1
                return
            reason, transient = outcome
            if not transient:
                break
        self.stats["failed"] += 1
        what = "webhook" if self.mail is None else "email alert via"
        log.warning("%s %s failed: %s", what, self.url, reason)

    async def _post(self, body: dict[str, Any]) -> tuple[str, bool] | None:
        """One webhook POST: None when delivered, else (why, worth retrying)."""
        assert self._session is not None
        try:
            async with self._session.post(self.url, json=body) as response:
                if response.status < 400:
                    return None
                return f"HTTP {response.status}", response.status == 429 or response.status >= 500
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}", True

    async def _send_mail(self, message: EmailMessage) -> tuple[str, bool] | None:
        """One SMTP delivery on a daemon thread: None when sent, else (why, worth retrying)."""
        destination = self.mail
        assert destination is not None
        try:
            await in_daemon_thread(
                lambda: mail.send(destination, message, timeout=self.timeout,
                                  context=self.ssl_context),
                name=f"streambench.notify.smtp[{destination.host}]")
        except mail.MailError as exc:
            return str(exc), exc.transient
        return None


def post_anomalies(
    url: str, anomalies: Iterable[Anomaly], *, run_id: str | None = None,
    style: Style = "json", timeout: float = 10.0,
) -> dict[str, int]:  # fmt: skip
    """Synchronous one-shot delivery (end of a run, CLI): at most ``timeout`` s, never raises
    for a failed delivery (a bad destination is a ConfigError). ``url`` may be ``smtp(s)://``."""

    async def once() -> dict[str, int]:
        notifier = Notifier(url, style=style, timeout=min(timeout, 5.0))
        async with notifier:
            notifier.notify(list(anomalies), run_id=run_id, final=True)
            await notifier.aclose(grace=timeout)
        return notifier.stats

    return asyncio.run(once())
