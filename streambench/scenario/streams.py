"""The ``stream`` section: what a pushed message carries that streambench can measure.

A *push* is a message the server sends on its own: every SSE event, a reply
that a rule with ``as: push`` recognises (WebSocket, MQTT), and every further
answer on a stream a message opened (``expect: stream``, such as a GraphQL
subscription's ``next`` messages). Each push is a ``push`` row with the gap
since the previous push of its stream; this section adds what the server
stamped on it:

* ``timestamp``: the path of the server's send time in the push's JSON, and
  ``timestamp_format`` what it is (``epoch_s``, ``epoch_ms``, ``epoch_us``,
  ``epoch_ns``: a number since 1970 UTC; ``iso8601``: text such as
  ``2026-12-02T03:04:05.123Z``). The push's *staleness* is its arrival minus
  that time (so it includes any clock difference between the two machines);
* ``sequence``: the path of the server's sequence number (an integer that
  grows by one per push of a stream), from which analysis counts missing,
  duplicate and out-of-order pushes.

Only the model and its own checks live here; :mod:`streambench.scenario.fit`
checks that the scenario has pushes to read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from streambench.scenario.conversation import FieldProblem, path_problem

TIMESTAMP_FORMATS = ("epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "iso8601")


class PushStream(BaseModel):
    """``stream: {timestamp: data.ts, timestamp_format: epoch_ms, sequence: data.seq}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    timestamp: str | None = None  # path of the server's send time in a push
    timestamp_format: Literal["epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "iso8601"] | None \
        = None
    sequence: str | None = None  # path of the server's sequence number in a push

    @model_validator(mode="after")
    def _check(self) -> PushStream:
        for key in ("timestamp", "sequence"):
            value = getattr(self, key)
            if value is not None and (problem := path_problem(value)) is not None:
                raise FieldProblem((key,), problem)
        if self.timestamp is not None and self.timestamp_format is None:
            raise FieldProblem(("timestamp_format",), "say what the timestamp is: "
                               f"{', '.join(TIMESTAMP_FORMATS)}")
        if self.timestamp is None and self.timestamp_format is not None:
            raise FieldProblem(("timestamp",), "timestamp_format needs timestamp (the path of "
                               "the server's send time in a push)")
        return self
