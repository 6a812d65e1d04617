"""Structured logging: ``--log-format json`` gives one JSON object per line.

Library code logs through ``get_logger("streambench.<part>")`` with context in
``extra={"run_id": ..., "conn": ..., "cid": ...}``; those keys become fields of
the JSON line. Nothing here runs on import: the CLI calls :func:`configure` once.

No secret reaches a log line: every streambench logger and the handler
:func:`configure` installs carry :class:`ScrubFilter`, which passes the message,
the context fields and any traceback through :func:`streambench.scrub.scrub`
before a handler sees the record (so a user's own handlers, in a notebook, get
scrubbed records too).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

from streambench.scrub import scrub

CONTEXT_KEYS = ("run_id", "conn", "cid", "worker", "url", "status")

# The run a task belongs to: set once by the run engine, inherited by every task
# it creates, so any log line from inside a run carries its id without plumbing.
current_run_id: ContextVar[str | None] = ContextVar("streambench_run_id", default=None)


class ScrubFilter(logging.Filter):
    """Rewrites a record in place with secrets scrubbed (idempotent; never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, scrub(value))
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_SCRUB = ScrubFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with :class:`ScrubFilter` attached (once).

    Use it instead of ``logging.getLogger`` everywhere in streambench: a
    logger's own filters run for every record it creates, whatever handlers
    the application has configured.
    """
    logger = logging.getLogger(name)
    if _SCRUB not in logger.filters:
        logger.addFilter(_SCRUB)
    return logger


class RunContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = current_run_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_KEYS
                           if getattr(record, k, None) is not None)
        return f"streambench: {record.levelname.lower()}: {record.getMessage()}" + (
            f" [{context}]" if context else "")


def configure(*, fmt: str = "text", level: str = "warning") -> None:
    """Send streambench's logs to stderr as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RunContextFilter())
    handler.addFilter(_SCRUB)
    logger = get_logger("streambench")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
