"""Email alerts: where they go (an ``smtp://`` URL), what they say, and one delivery.

:class:`MailDestination` is parsed from the URL a :class:`~streambench.analyze.notify.Notifier`
is given::

    smtp://mail.example.com:587?from=bench@example.com&to=oncall@example.com,sre@example.com
    smtps://mail.example.com:465?from=...&to=...

``smtp://`` upgrades the connection with STARTTLS (and fails if the server
does not offer it), ``smtps://`` speaks TLS from the first byte; the default
ports are 587 and 465. Credentials come from the environment only,
``STREAMBENCH_SMTP_USER`` and ``STREAMBENCH_SMTP_PASSWORD`` (no login when
neither is set); they are never written anywhere.

:func:`send` delivers one message with the standard library's ``smtplib``
(blocking: the notifier runs it on a daemon thread of its own) and raises
:class:`MailError` saying whether trying again may help: connection failures,
timeouts and 4xx replies may; 5xx replies (bad credentials, refused recipients)
and TLS failures will not.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from streambench.analyze.types import Anomaly
from streambench.errors import ConfigError

SCHEMES = {"smtp": 587, "smtps": 465}
USER_ENV = "STREAMBENCH_SMTP_USER"
PASSWORD_ENV = "STREAMBENCH_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a secret


class MailError(Exception):
    """One delivery failed; ``transient`` says whether a retry may succeed."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


@dataclass(frozen=True)
class MailDestination:
    """An SMTP server and the envelope of the alerts (parse with :meth:`from_url`)."""

    host: str
    port: int
    implicit_tls: bool  # smtps://; else STARTTLS
    sender: str
    recipients: tuple[str, ...]
    credentials: tuple[str, str] | None = None

    def __repr__(self) -> str:  # never the password
        login = "" if self.credentials is None else f" as {self.credentials[0]}"
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"MailDestination({scheme}://{self.host}:{self.port}{login})"

    @classmethod
    def from_url(cls, url: str, *, env: Mapping[str, str] | None = None) -> MailDestination:
        """Parse ``smtp(s)://host[:port]?from=...&to=a,b``; ConfigError naming what is wrong."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ConfigError(f"email alerts: expected smtp://host[:port] or smtps://host[:port],"
                              f" got {url!r}")
        if parts.username or parts.password:
            raise ConfigError(f"email alerts: no credentials in the URL; set {USER_ENV} and "
                              f"{PASSWORD_ENV}")
        query = parse_qs(parts.query)
        sender = query.get("from", [""])[0]
        recipients = tuple(a.strip() for v in query.get("to", []) for a in v.split(",")
                           if a.strip())
        if "@" not in sender or not recipients or not all("@" in r for r in recipients):
            raise ConfigError(f"email alerts: {url!r} needs ?from=<address>&to=<address>[,...]")
        return cls(host=parts.hostname, port=parts.port or SCHEMES[parts.scheme],
                   implicit_tls=parts.scheme == "smtps", sender=sender, recipients=recipients,
                   credentials=credentials_from(os.environ if env is None else env))


def credentials_from(env: Mapping[str, str]) -> tuple[str, str] | None:
    """``(user, password)`` from the environment, None when neither is set."""
    user, password = env.get(USER_ENV), env.get(PASSWORD_ENV)
    if user is None and password is None:
        return None
    if not user or password is None:
        raise ConfigError(f"email alerts: set both {USER_ENV} and {PASSWORD_ENV}, or neither")
    return user, password


def render(title: str, lines: list[str], anomalies: list[Anomaly], *,
           destination: MailDestination, body: dict[str, Any]) -> EmailMessage:
    """One alert email: the title as subject, one line per anomaly, the JSON body attached."""
    message = EmailMessage()
    message["Subject"] = title
    message["From"] = destination.sender
    message["To"] = ", ".join(destination.recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="streambench")
    text = "\n".join(lines) if lines else "No anomalies."
    message.set_content(f"{title}\n\n{text}\n")
    message.add_attachment(orjson.dumps(body, option=orjson.OPT_INDENT_2),
                           maintype="application", subtype="json", filename="anomalies.json")
    return message


def send(destination: MailDestination, message: EmailMessage, *, timeout: float,
         context: ssl.SSLContext | None = None) -> None:
    """Deliver ``message`` once (blocking); raise MailError on failure."""
    context = context or ssl.create_default_context()
    try:
        if destination.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(destination.host, destination.port,
                                                    timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(destination.host, destination.port, timeout=timeout)
        with client:
            if not destination.implicit_tls:
                client.starttls(context=context)  # SMTPNotSupportedError if not offered
            if destination.credentials is not None:
                client.login(*destination.credentials)
            client.send_message(message, from_addr=destination.sender,
                                to_addrs=list(destination.recipients))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise MailError(f"recipients refused: {codes}",
                        transient=all(400 <= c < 500 for c in codes)) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        raise MailError(f"SMTP {exc.smtp_code} {text}".strip(),
                        transient=400 <= exc.smtp_code < 500) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(f"not offered by the server: {exc}", transient=False) from None
    except ssl.SSLError as exc:
        raise MailError(f"TLS: {exc.reason or exc}", transient=False) from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, hung up
        raise MailError(f"{type(exc).__name__}: {exc}", transient=True) from None
