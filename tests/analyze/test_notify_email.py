"""Email alerts against a real SMTP server (aiosmtpd) on 127.0.0.1, STARTTLS and TLS."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
import socket
import ssl
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from streambench.analyze import Notifier
from streambench.analyze.mail import MailDestination
from streambench.analyze.notify import post_anomalies
from streambench.analyze.types import Anomaly
from streambench.errors import ConfigError
from tests.analyze.helpers import T0_NS, S
from tests.helpers import TIME_SCALE

ANOMALIES = [
    Anomaly(rule="reply-stall", kind="stall", severity="critical", start=T0_NS,
            end=T0_NS + 3 * S, fingerprint="reply-stall:chat", evidence={"pending": 7}),
    Anomaly(rule="error-burst", kind="errors", severity="warning", start=T0_NS + 5 * S,
            end=T0_NS + 6 * S, fingerprint="error-burst:chat", evidence={"errors": 12}),
]
USER, PASSWORD = "bench", "correct horse battery staple"
ADDRESSES = "from=bench@example.com&to=oncall@example.com,sre@example.com"


@dataclass
class Mailbox:
    """What the SMTP server accepted, and how it answers DATA (``replies``, then 250)."""

    replies: list[str] = field(default_factory=list)
    received: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    attempts: int = 0
    got_one: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.replies:
            return self.replies.pop(0)
        self.received.append(envelope)
        self.got_one.set()
        return "250 OK"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) \
            == (USER.encode(), PASSWORD.encode())
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(e.original_content or b"", policy=email.policy.default)
                for e in self.received]  # type: ignore[misc]


@dataclass
class Tls:
    client: ssl.SSLContext
    server: ssl.SSLContext


@pytest.fixture(scope="module")
def tls() -> Tls:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Tls(client=client, server=server)


Start = Callable[..., Any]


@pytest.fixture
async def smtp_server(tls: Tls) -> AsyncIterator[Start]:
    """``port = await smtp_server(mailbox, implicit_tls=False)``: aiosmtpd in this loop."""
    servers: list[asyncio.Server] = []

    async def start(mailbox: Mailbox, *, implicit_tls: bool = False) -> int:
        def protocol() -> SMTP:
            with warnings.catch_warnings():
                # Over implicit TLS aiosmtpd cannot tell that the socket is TLS: it warns
                # that AUTH does not require TLS. It does here, from the first byte.
                warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
                return SMTP(mailbox, hostname="127.0.0.1", authenticator=mailbox.authenticate,
                            auth_required=True,
                            tls_context=None if implicit_tls else tls.server,
                            require_starttls=not implicit_tls,
                            auth_require_tls=not implicit_tls)

        server = await asyncio.get_running_loop().create_server(
            protocol, "127.0.0.1", 0, ssl=tls.server if implicit_tls else None)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMBENCH_SMTP_USER", USER)
    monkeypatch.setenv("STREAMBENCH_SMTP_PASSWORD", PASSWORD)


def quick() -> Iterator[float]:
    return iter([0.01] * 10)


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
async def test_one_email_per_batch_over_tls_with_credentials_from_the_environment(
        smtp_server: Start, tls: Tls, credentials: None, scheme: str) -> None:
    mailbox = Mailbox()
    port = await smtp_server(mailbox, implicit_tls=scheme == "smtps")
    url = f"{scheme}://127.0.0.1:{port}?{ADDRESSES}"
    async with Notifier(url, ssl_context=tls.client, backoff=quick) as notifier:
        assert notifier.style == "email"
        assert notifier.notify(ANOMALIES, run_id="r1") is True
        assert notifier.notify(ANOMALIES[0], run_id="r1", final=True) is True
    assert notifier.stats == {"sent": 2, "failed": 0, "dropped": 0, "retries": 0}
    assert mailbox.logins == [USER, USER]
    first, second = mailbox.messages()
    assert first["Subject"] == "streambench: 2 anomalies in run r1"
    assert second["Subject"] == "streambench: 1 anomaly in run r1 (run finished)"
    assert first["From"] == "bench@example.com"
    assert first["To"] == "oncall@example.com, sre@example.com"
    assert mailbox.received[0].rcpt_tos == ["oncall@example.com", "sre@example.com"]
    text = first.get_body(("plain",)).get_content()
    assert "[critical] reply-stall (stall)" in text
    assert "[warning] error-burst (errors)" in text
    (attachment,) = list(first.iter_attachments())
    body = json.loads(attachment.get_content())
    assert [a["rule"] for a in body["anomalies"]] == ["reply-stall", "error-burst"]
    raw = b"".join(e.original_content or b"" for e in mailbox.received)
    assert PASSWORD.encode() not in raw


async def test_a_transient_refusal_is_retried_with_backoff(smtp_server: Start, tls: Tls,
                                                           credentials: None) -> None:
    mailbox = Mailbox(replies=["451 4.3.0 try again later", "421 4.7.0 busy"])
    port = await smtp_server(mailbox)
    async with Notifier(f"smtp://127.0.0.1:{port}?{ADDRESSES}", ssl_context=tls.client,
                        retries=3, backoff=quick) as notifier:
        notifier.notify(ANOMALIES, run_id="r2")
        await asyncio.wait_for(mailbox.got_one.wait(), 10)
    assert notifier.stats == {"sent": 1, "failed": 0, "dropped": 0, "retries": 2}
    assert mailbox.attempts == 3


async def test_bad_credentials_are_not_retried(smtp_server: Start, tls: Tls,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMBENCH_SMTP_USER", USER)
    monkeypatch.setenv("STREAMBENCH_SMTP_PASSWORD", "wrong")
    mailbox = Mailbox()
    port = await smtp_server(mailbox)
    async with Notifier(f"smtp://127.0.0.1:{port}?{ADDRESSES}", ssl_context=tls.client,
                        retries=3, backoff=quick) as notifier:
        notifier.notify(ANOMALIES, run_id="r3")
    assert notifier.stats == {"sent": 0, "failed": 1, "dropped": 0, "retries": 0}
    assert mailbox.received == []


async def test_a_server_that_never_answers_costs_the_caller_nothing(tls: Tls) -> None:
    """A listening socket that never greets: every attempt waits for its timeout in a
    daemon thread; the caller's notify() and aclose() stay within their bounds."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        notifier = Notifier(f"smtps://127.0.0.1:{port}?{ADDRESSES}", ssl_context=tls.client,
                            timeout=30, retries=2, backoff=quick, queue_size=10)
        notifier.start()
        started = time.perf_counter()
        queued = [notifier.notify(ANOMALIES, run_id=f"r{i}") for i in range(20)]
        notify_s = time.perf_counter() - started
        # Responsive while a delivery thread is stuck: the loop turns over at once.
        turned = time.perf_counter()
        for _ in range(100):
            await asyncio.sleep(0)
        turn_s = time.perf_counter() - turned
        closed = time.perf_counter()
        await notifier.aclose(grace=0.2)
        close_s = time.perf_counter() - closed
        stuck = [t for t in threading.enumerate()
                 if t.name.startswith("streambench.notify.smtp")]
    assert queued == [True] * 10 + [False] * 10  # a full queue drops, never blocks
    assert notify_s < 0.5 * TIME_SCALE  # 20 batches rendered and queued
    assert turn_s < 0.25 * TIME_SCALE
    assert close_s < 1.0 * TIME_SCALE  # the grace, not the 30 s timeout
    assert notifier.stats["sent"] == 0
    assert notifier.stats["dropped"] == 20  # 10 refused by the queue, 10 never delivered
    assert stuck  # still waiting for a greeting...
    assert all(t.daemon for t in stuck)  # nothing waits for them at exit


def test_post_anomalies_to_a_dead_mail_server_is_bounded_and_quiet() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    started = time.perf_counter()
    stats = post_anomalies(f"smtp://127.0.0.1:{port}?{ADDRESSES}", ANOMALIES, timeout=1)
    assert time.perf_counter() - started < 3 * TIME_SCALE
    assert stats["sent"] == 0
    assert stats["failed"] + stats["dropped"] == 1


@pytest.mark.parametrize(("url", "problem"), [
    ("smtp://mail.example.com", "needs ?from=<address>&to=<address>"),
    ("smtp://u:pw@mail.example.com?" + ADDRESSES, "no credentials in the URL"),
    ("smtp://mail.example.com?from=a@example.com&to=nobody", "needs ?from="),
])
def test_bad_destinations_are_one_line(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        Notifier(url)


def test_styles_fit_destinations(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="style slack is for webhooks"):
        Notifier(f"smtp://mail.example.com?{ADDRESSES}", style="slack")
    with pytest.raises(ConfigError, match="style email needs an smtp://"):
        Notifier("https://hooks.example/x", style="email")
    monkeypatch.setenv("STREAMBENCH_SMTP_USER", USER)
    monkeypatch.delenv("STREAMBENCH_SMTP_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="set both STREAMBENCH_SMTP_USER"):
        Notifier(f"smtp://mail.example.com?{ADDRESSES}")
    monkeypatch.setenv("STREAMBENCH_SMTP_PASSWORD", PASSWORD)
    destination = MailDestination.from_url(f"smtps://mail.example.com?{ADDRESSES}")
    assert (destination.port, destination.implicit_tls) == (465, True)
    assert PASSWORD not in repr(destination)
