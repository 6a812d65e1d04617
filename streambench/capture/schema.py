"""The event and fault schemas: the contract every reader of the store relies on.

One row per event. ``latency_ms`` is receive time minus the *intended* send
time (the schedule's, not the moment the sender got round to it), so a stalled
server cannot hide behind a slowed sender (no coordinated omission);
``service_ms`` is receive minus the actual send. ``sent_ns`` (the actual send
time, wall clock) is an added column so schedule lag can be computed exactly.
"""

from __future__ import annotations

from enum import IntEnum

import pyarrow as pa

SCHEMA_VERSION = 1


class Kind(IntEnum):
    """Event kinds; the integer is only the in-memory code, the store holds the name."""

    SEND = 0
    RECV = 1
    ERROR = 2
    TIMEOUT = 3
    CONNECT = 4
    DISCONNECT = 5
    FAULT = 6
    STEP = 7  # a set-up step answered (status: the step's name; latency from its send)
    NOTIFY = 8  # a message sent that expects no reply (not part of ``send``)
    OTHER = 9  # a reply the scenario classified as no answer (status: the rule's name)
    # A fan-out message received by another member of its sender's group: ``conn`` the
    # receiver, ``seq``/``cid``/``intended_ns``/``sent_ns`` the sender's message,
    # ``status`` the group; latency from the sender's intended send time.
    DELIVERY = 10
    PUSH = 11  # a message the server pushed on a stream (generate/engine/pushes.py)


# The codes of the rows recorded once per message, as plain ints for hot paths: the
# garbage collector stops tracking a tuple of ints, strings, bytes and None at its
# first collection, but one holding an enum member (an object with a __dict__) stays
# tracked, so every row held until the next flush is promoted and walked again by
# the older generations' collections (measured: about 1.5 us per gRPC message).
SEND_CODE, RECV_CODE, NOTIFY_CODE = int(Kind.SEND), int(Kind.RECV), int(Kind.NOTIFY)

TIMED_KINDS = (Kind.RECV, Kind.STEP, Kind.DELIVERY)
"""Rows whose ``latency_ms``/``service_ms`` are computed (receive minus intended/sent)."""


KIND_NAMES: tuple[str, ...] = tuple(k.name.lower() for k in Kind)

EVENT_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("protocol", pa.string(), nullable=False),
        pa.field("conn", pa.int32(), nullable=False),
        pa.field("seq", pa.int64()),
        pa.field("cid", pa.string()),
        pa.field("intended_ns", pa.int64()),
        pa.field("latency_ms", pa.float64()),
        pa.field("service_ms", pa.float64()),
        pa.field("bytes", pa.int32()),
        pa.field("topic", pa.string()),
        pa.field("status", pa.string()),
        pa.field("error", pa.string()),
        pa.field("payload", pa.string()),
        pa.field("sent_ns", pa.int64()),
        pa.field("worker", pa.int32()),
    ]
)

FAULT_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # "client" | "target"
        pa.field("kind", pa.string(), nullable=False),  # delay, drop, stall, disconnect, ...
        pa.field("start", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("end", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("conn", pa.int32()),  # None: every connection
        pa.field("cid", pa.string()),
        pa.field("detail", pa.string()),
    ]
)

HEALTH_SCHEMA = pa.schema(
    [
        # One row per process per sample interval (about a second): how the processes
        # of a run (the load generator's and the built-in target's) were doing. The
        # analysis reads these names; see docs/analysis.md#process-health-rows.
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),  # end of the interval
        pa.field("interval_s", pa.float64(), nullable=False),  # length of the interval
        pa.field("source", pa.string(), nullable=False),  # "client" | "target"
        pa.field("worker", pa.int32()),  # client worker index; None for the target
        pa.field("pid", pa.int32()),
        pa.field("rss_bytes", pa.int64()),  # resident memory at ts
        pa.field("open_files", pa.int32()),  # open file descriptors at ts
        pa.field("cpu_s", pa.float64()),  # CPU seconds (user + system) used in the interval
        pa.field("parts_written", pa.int64()),  # capture parts written so far (cumulative)
        pa.field("loop_stall_ms", pa.float64()),  # longest event-loop stall in the interval
        pa.field("connections", pa.int32()),  # open connections at ts
    ]
)
