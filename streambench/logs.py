"""Structured logging: ``--log-format json`` gives one JSON object per line.

Library code logs through ``logging.getLogger("streambench.<part>")`` with
context in ``extra={"run_id": ..., "conn": ..., "cid": ...}``; those keys
become fields of the JSON line. Nothing here runs on import: the CLI calls
:func:`configure` once.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

CONTEXT_KEYS = ("run_id", "conn", "cid", "worker", "url", "status")

# The run a task belongs to: set once by the run engine, inherited by every task
# it creates, so any log line from inside a run carries its id without plumbing.
current_run_id: ContextVar[str | None] = ContextVar("streambench_run_id", default=None)


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
            line["exc"] = self.formatException(record.exc_info)
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
    logger = logging.getLogger("streambench")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
