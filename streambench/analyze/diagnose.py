"""Diagnosis of replies and closes: did the scenario understand what the server said?

:func:`replies_summary` counts the replies that arrived and how they were
classified (``matched``: answers that resolved a message, error answers
included; ``classified``: ``other`` rows per rule name; ``unmatched``: protocol
errors about replies), says what an answer had to carry, and keeps one stored
(redacted) sample of a reply that matched nothing. :func:`closes_summary`
counts how connections ended (close code or status, and reason).

A run where most replies matched nothing has measured nothing:
:func:`mostly_unmatched` says so, and ``streambench run`` exits non-zero.
"""

from __future__ import annotations

from typing import Any

import polars as pl

UNMATCHED = ("garbage", "unmatched", "late")  # error statuses about a reply received
MATCHED_ERRORS = ("error_reply",)


def replies_summary(events: pl.LazyFrame, manifest: dict[str, Any]) -> dict[str, Any]:
    """``arrived``, ``matched``, ``classified`` (per rule), ``unmatched``, ``looked_for``
    and ``sample`` (status, error and stored payload of one unmatched reply, or None)."""
    kind, status = pl.col("kind"), pl.col("status")
    unmatched = (kind == "error") & status.is_in(UNMATCHED)
    counts = events.select(
        matched=((kind == "recv") | ((kind == "error") & status.is_in(MATCHED_ERRORS))).sum(),
        unmatched=unmatched.sum(),
        other=(kind == "other").sum(),
    ).collect().row(0, named=True)
    classified = (events.filter(kind == "other").group_by("status").len()
                  .sort("len", descending=True).collect())
    sample = (events.filter(unmatched).select("status", "error", "payload").head(1)
              .collect().to_dicts())
    arrived = counts["matched"] + counts["unmatched"] + counts["other"]
    return {
        "arrived": arrived,
        "matched": counts["matched"],
        "classified": {row["status"] or "other": row["len"] for row in classified.to_dicts()},
        "unmatched": counts["unmatched"],
        "looked_for": looked_for(manifest),
        "sample": sample[0] if sample else None,
    }


def looked_for(manifest: dict[str, Any]) -> str | None:
    """What an answer had to carry, from the run's scenario (None if it cannot be read)."""
    from pydantic import ValidationError

    from streambench.scenario.model import Scenario

    try:
        return Scenario.model_validate(manifest.get("scenario", {})).looked_for()
    except (ValidationError, ValueError, TypeError):
        return None


def closes_summary(events: pl.LazyFrame) -> list[dict[str, Any]]:
    """How connections ended: ``[{"code": "1011", "reason": "...", "count": 3}, ...]``."""
    rows = (events.filter(pl.col("kind") == "disconnect")
            .group_by("status", "error").len()
            .sort("len", descending=True).collect())
    return [{"code": row["status"], "reason": row["error"], "count": row["len"]}
            for row in rows.to_dicts()]


def mostly_unmatched(replies: dict[str, Any]) -> bool:
    """True when more replies matched nothing than matched a request."""
    return bool(replies["unmatched"] > replies["matched"])


def unmatched_line(replies: dict[str, Any]) -> str:
    """The one line ``streambench run`` prints when most replies matched nothing."""
    what = replies["looked_for"] or "the scenario's correlation id"
    return (f"{replies['unmatched']} of {replies['arrived']} replies matched no request; "
            f"looked for {what}: see the unmatched sample in the summary, and "
            "replies.id / replies.rules in docs/backends.md")


def format_replies(replies: dict[str, Any], closes: list[dict[str, Any]]) -> list[str]:
    """Summary lines: replies by class, an unmatched sample, close codes."""
    classified = "  ".join(f"{name} {count}" for name, count in replies["classified"].items())
    lines = [f"  replies  arrived {replies['arrived']}  matched {replies['matched']}"
             f"  unmatched {replies['unmatched']}"
             + (f"  classified: {classified}" if classified else "")]
    sample = replies["sample"]
    if sample is not None:
        lines.append(f"  looked for {replies['looked_for']}")
        payload = sample["payload"] or "(payload not stored)"
        lines.append(f"  unmatched sample ({sample['status']}: {sample['error']}): "
                     f"{payload[:300]}")
    if closes:
        ends = ", ".join(f"{c['code'] or 'no code'}"
                         + (f" {c['reason']}" if c["reason"] else "") + f" x{c['count']}"
                         for c in closes[:5])
        lines.append(f"  closes  {ends}")
    return lines
