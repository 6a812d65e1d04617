"""Network faults in scenarios: the ``network_faults:`` list, typed and validated.

A run with network faults (or ``target.via: proxy``) puts streambench's TCP
fault proxy between its clients and the target; the proxy moves bytes and
breaks them as these entries say (docs/network-faults.md is the reference)::

    network_faults:
      - {kind: latency, delay: 50ms, jitter: 10ms, direction: downstream, at: 2s, for: 3s}
      - {kind: bandwidth, rate: 20KB/s, direction: both, share: 0.5}
      - {kind: blackhole, at: 5s, for: 1s, share: 0.3}
      - {kind: reset, at: 4s, every: 10s}
      - {kind: slow_close, delay: 2s}
      - {kind: slicer, size: 8, variation: 4, delay: 1ms, direction: downstream}
      - {kind: refuse, at: 6s, for: 2s}
      - {kind: close_after, bytes: 65536, direction: upstream}

When: ``at`` (seconds from the start of the schedule), ``for`` (how long;
omitted: until the run ends) and ``every`` (the window repeats with this
period). ``reset`` is an instant (no ``for``). Which connections: ``share``,
a seeded fraction of the proxy's connections (in the order it accepted
them). Which way: ``direction``, ``upstream`` (client to target),
``downstream`` (target to client) or ``both``. ``refuse`` acts on the
listening socket (new connections are refused), so it has neither.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*(?:/s)?\s*$")
_RATE_UNITS = {None: 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024.0,
               "MiB": 1024.0 ** 2, "GiB": 1024.0 ** 3}


def _duration(value: Any) -> float:
    # Imported here: the scenario model imports this module for its field.
    from streambench.scenario.model import parse_duration

    return parse_duration(value)


def parse_byte_rate(value: Any) -> float:
    """``"64KB/s"`` -> 64000.0, ``"1MiB/s"`` -> 1048576.0, ``5000`` -> 5000.0 (bytes/s)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a rate in bytes/s such as 20000, 64KB/s or 1MiB/s, "
                         f"got {value!r}")
    return float(match.group(1)) * _RATE_UNITS[match.group(2)]


Duration = Annotated[float, BeforeValidator(_duration)]
ByteRate = Annotated[float, BeforeValidator(parse_byte_rate)]
Direction = Literal["upstream", "downstream", "both"]


class _Timed(BaseModel):
    # "for" is a Python keyword: the field is ``for_`` and reads/writes as "for".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              populate_by_name=True, serialize_by_alias=True)

    at: Duration = 0.0  # start of the (first) window, seconds from the schedule's start
    for_: Duration | None = Field(default=None, alias="for")  # None: until the run ends
    every: Duration | None = Field(default=None, gt=0)  # the window repeats with this period

    @model_validator(mode="after")
    def _period(self) -> _Timed:
        if self.every is None:
            return self
        if self.for_ is None and not self.instant:
            raise ValueError("a repeating fault (every) needs for: how long each window lasts")
        if self.for_ is not None and self.for_ > self.every:
            raise ValueError(f"for ({self.for_:g}s) is longer than every ({self.every:g}s): "
                             "windows would overlap")
        return self

    @property
    def instant(self) -> bool:
        """True for faults that happen at an instant (``reset``), not over a window."""
        return False


class _ConnectionFault(_Timed):
    direction: Direction = "both"
    share: float = Field(default=1.0, ge=0.0, le=1.0)  # seeded fraction of connections


class LatencyNetFault(_ConnectionFault):
    """Every chunk of bytes waits ``delay`` plus a seeded draw in ``[0, jitter]`` (order kept)."""

    kind: Literal["latency"]
    delay: Duration = 0.0
    jitter: Duration = 0.0

    @model_validator(mode="after")
    def _some_delay(self) -> LatencyNetFault:
        if self.delay <= 0 and self.jitter <= 0:
            raise ValueError("a latency fault needs delay or jitter > 0")
        return self


class BandwidthFault(_ConnectionFault):
    """Each picked connection's direction is squeezed to ``rate`` bytes/s."""

    kind: Literal["bandwidth"]
    rate: ByteRate = Field(gt=0)


class BlackholeFault(_ConnectionFault):
    """Picked connections go dark: bytes (and closes) vanish; the sockets stay open.

    A connection that went dark stays dark (half-open) until it is closed; the
    window decides when existing connections go dark and which new ones are
    accepted dark. The client notices only through its own timeouts or heartbeats.
    """

    kind: Literal["blackhole"]


class ResetFault(_ConnectionFault):
    """At ``at`` (and every ``every``) picked open connections are reset (TCP RST).

    ``direction`` says who gets the RST: ``downstream`` the client,
    ``upstream`` the target (the other side sees a plain close), ``both`` both.
    """

    kind: Literal["reset"]

    @property
    def instant(self) -> bool:
        return True

    @model_validator(mode="after")
    def _no_window(self) -> ResetFault:
        if self.for_ is not None:
            raise ValueError("a reset happens at an instant: give at (and every to repeat), "
                             "not for")
        return self


class SlowCloseFault(_ConnectionFault):
    """A close (FIN or RST) travelling in ``direction`` is passed on ``delay`` late."""

    kind: Literal["slow_close"]
    delay: Duration = Field(gt=0)


class SlicerFault(_ConnectionFault):
    """Bytes are cut into slices of ``size`` +- ``variation`` bytes, ``delay`` apart."""

    kind: Literal["slicer"]
    size: int = Field(default=16, ge=1, le=1 << 20)
    variation: int = Field(default=0, ge=0)
    delay: Duration = 0.001

    @model_validator(mode="after")
    def _variation(self) -> SlicerFault:
        if self.variation >= self.size:
            raise ValueError(f"variation ({self.variation}) must be smaller than size "
                             f"({self.size})")
        return self


class RefuseFault(_Timed):
    """New connections are refused (the proxy stops listening); open ones go on."""

    kind: Literal["refuse"]


class CloseAfterFault(_ConnectionFault):
    """A picked connection is closed once ``bytes`` bytes went ``direction`` in the window."""

    kind: Literal["close_after"]
    limit: int = Field(alias="bytes", ge=0)


NetworkFault = Annotated[
    LatencyNetFault | BandwidthFault | BlackholeFault | ResetFault | SlowCloseFault
    | SlicerFault | RefuseFault | CloseAfterFault,
    Field(discriminator="kind"),
]
ConnectionFault = (LatencyNetFault | BandwidthFault | BlackholeFault | ResetFault
                   | SlowCloseFault | SlicerFault | CloseAfterFault)
NETWORK_FAULT_KINDS = ("latency", "bandwidth", "blackhole", "reset", "slow_close", "slicer",
                       "refuse", "close_after")
