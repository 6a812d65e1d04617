"""The fault proxy on real sockets: each kind's effect on the bytes, and its ground truth.

An asyncio echo server on 127.0.0.1 stands behind a :class:`FaultProxy` in
the test's own loop; the client is a plain asyncio stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import TypeAdapter

from streambench.generate.faults.network.link import SLACK_NS
from streambench.generate.faults.network.plan import NetworkPlan
from streambench.generate.faults.network.proxy import FaultProxy
from streambench.scenario.network import NetworkFault

FAULTS = TypeAdapter(tuple[NetworkFault, ...])
WAIT = 5.0  # bound on every wait for something that should happen
SLACK_S = SLACK_NS / 1e9  # a delayed chunk may be released this much early


@dataclass
class Echo:
    """An echo server that remembers what it got and can close a connection on request."""

    received: bytearray = field(default_factory=bytearray)
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    closed_at: list[float] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.received += data
                if data.endswith(b"bye"):
                    self.closed_at.append(time.monotonic())
                    break
                writer.write(data)
                await writer.drain()
            else:
                self.eof.set()
        except ConnectionError:
            self.eof.set()
        finally:
            writer.close()


@dataclass
class Setup:
    proxy: FaultProxy
    echo: Echo
    rows: list[dict[str, Any]]
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(*self.proxy.address)
        self.writers.append(writer)
        return reader, writer

    async def stop(self) -> list[dict[str, Any]]:
        await self.proxy.close()
        return self.rows


@pytest.fixture
async def start() -> AsyncIterator[Any]:
    started: list[tuple[Setup, asyncio.Server]] = []

    async def make(*faults: dict[str, Any], seed: int = 1) -> Setup:
        echo = Echo()
        server = await asyncio.start_server(echo.handle, "127.0.0.1", 0)
        echo.port = server.sockets[0].getsockname()[1]
        rows: list[dict[str, Any]] = []
        proxy = FaultProxy(NetworkPlan(FAULTS.validate_python(faults), seed=seed),
                           upstream=("127.0.0.1", echo.port), emit=rows.append)
        await proxy.start("127.0.0.1", 0)
        proxy.start_clock(time.monotonic_ns())
        setup = Setup(proxy, echo, rows)
        started.append((setup, server))
        return setup

    yield make
    for setup, server in started:
        await setup.proxy.close()
        for writer in setup.writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     data: bytes = b"ping") -> float:
    began = time.monotonic()
    writer.write(data)
    assert await asyncio.wait_for(reader.readexactly(len(data)), WAIT) == data
    return time.monotonic() - began


async def test_a_clean_proxy_passes_bytes_and_half_closes_through(start: Any) -> None:
    setup = await start()
    reader, writer = await setup.connect()
    big = bytes(range(256)) * 8192  # 2 MiB: more than the buffers, so flow control works
    writer.write(big)
    assert await asyncio.wait_for(reader.readexactly(len(big)), WAIT) == big
    writer.write_eof()
    await asyncio.wait_for(setup.echo.eof.wait(), WAIT)
    assert await asyncio.wait_for(reader.read(), WAIT) == b""  # the server's close came back
    assert await setup.stop() == []  # no fault, no ground truth


async def test_latency_delays_the_direction_it_names(start: Any) -> None:
    setup = await start({"kind": "latency", "delay": "80ms", "direction": "downstream"})
    reader, writer = await setup.connect()
    rtt = await round_trip(reader, writer)
    assert 0.08 - SLACK_S <= rtt < 1.0  # released up to SLACK_NS early (uvloop's ms timers)
    writer.close()
    rows = await setup.stop()
    assert [(r["source"], r["kind"], r["conn"]) for r in rows] == [("network", "latency", None)]
    assert rows[0]["detail"] == "latency 80ms downstream on 1 connection, 4 bytes"


async def test_latency_applies_only_inside_its_window(start: Any) -> None:
    setup = await start({"kind": "latency", "delay": "100ms", "at": "0s", "for": "300ms"})
    reader, writer = await setup.connect()
    inside = await round_trip(reader, writer)
    await asyncio.sleep(0.4)  # the window is over
    outside = await round_trip(reader, writer)
    assert inside >= 0.2 - 2 * SLACK_S  # 100 ms each way
    assert outside < 0.1
    rows = await setup.stop()
    assert len(rows) == 1
    assert 0.25 <= (rows[0]["end_ns"] - rows[0]["start_ns"]) / 1e9 < 0.6


async def test_bandwidth_limits_the_transfer_rate(start: Any) -> None:
    setup = await start({"kind": "bandwidth", "rate": "100KB/s", "direction": "downstream"})
    reader, writer = await setup.connect()
    elapsed = await round_trip(reader, writer, b"x" * 50_000)
    assert 0.45 <= elapsed < 3.0  # 50 kB at 100 kB/s
    writer.close()
    rows = await setup.stop()
    assert rows[0]["kind"] == "bandwidth"
    assert "50000 bytes" in rows[0]["detail"]


async def test_slicer_delivers_small_slices(start: Any) -> None:
    setup = await start({"kind": "slicer", "size": 4, "delay": "10ms",
                         "direction": "downstream"})
    reader, writer = await setup.connect()
    writer.write(b"0123456789abcdefghij" * 2)
    reads: list[bytes] = []
    while sum(map(len, reads)) < 40:
        reads.append(await asyncio.wait_for(reader.read(1024), WAIT))
    assert b"".join(reads) == b"0123456789abcdefghij" * 2
    assert len(reads) >= 4  # 10 slices 10 ms apart arrive in several reads
    writer.close()
    assert (await setup.stop())[0]["kind"] == "slicer"


async def test_blackhole_swallows_bytes_and_keeps_the_socket_open(start: Any) -> None:
    setup = await start({"kind": "blackhole", "direction": "both", "for": "200ms"})
    reader, writer = await setup.connect()
    writer.write(b"hello")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(10), 0.4)  # no echo, and no EOF either
    assert not setup.echo.received  # upstream too: nothing got through
    assert not setup.rows  # the window is over, but the connection is still dark
    closed = time.time_ns()
    writer.close()  # the client gives up: the dark connection ends, and its row with it
    await asyncio.wait_for(_until(lambda: setup.rows), WAIT)
    row = setup.rows[0]
    assert row["kind"] == "blackhole"
    assert row["detail"] == "blackhole (half-open) both on 1 connection, 5 bytes"
    assert row["end_ns"] >= closed


async def test_a_connection_accepted_dark_gets_nothing_through(start: Any) -> None:
    setup = await start({"kind": "blackhole", "at": "0s", "direction": "upstream"})
    reader, writer = await setup.connect()
    writer.write(b"lost")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(10), 0.3)
    writer.close()
    await setup.stop()
    assert setup.echo.received == b""


async def test_reset_sends_an_rst_mid_stream(start: Any) -> None:
    setup = await start({"kind": "reset", "at": "300ms", "direction": "downstream"})
    reader, writer = await setup.connect()
    await round_trip(reader, writer)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(10), WAIT)
    rows = await setup.stop()
    assert [(r["kind"], r["start_ns"] == r["end_ns"]) for r in rows] == [("reset", True)]
    assert rows[0]["detail"] == "reset (RST) downstream on 1 connection"


async def test_slow_close_passes_the_close_on_late(start: Any) -> None:
    setup = await start({"kind": "slow_close", "delay": "400ms", "direction": "downstream"})
    reader, writer = await setup.connect()
    writer.write(b"bye")  # the server closes its side on this
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    seen = time.monotonic()
    assert seen - setup.echo.closed_at[0] >= 0.35
    writer.close()
    rows = await setup.stop()
    assert rows[0]["kind"] == "slow_close"
    assert 0.35 <= (rows[0]["end_ns"] - rows[0]["start_ns"]) / 1e9 < 1.0


async def test_refuse_refuses_new_connections_in_its_window_only(start: Any) -> None:
    setup = await start({"kind": "refuse", "at": "0s", "for": "400ms"})
    reader, writer = await asyncio.wait_for(_connect_after_refusals(setup), WAIT)
    assert await round_trip(reader, writer) < 1.0  # open again after the window
    writer.close()
    rows = await setup.stop()
    assert [r["kind"] for r in rows] == ["refuse"]
    assert 0.35 <= (rows[0]["end_ns"] - rows[0]["start_ns"]) / 1e9 < 1.0


async def _connect_after_refusals(setup: Setup) -> tuple[Any, Any]:
    refusals = 0
    while True:
        try:
            streams = await setup.connect()
        except ConnectionRefusedError:
            refusals += 1
            await asyncio.sleep(0.05)
            continue
        assert refusals >= 2  # it did refuse while the window lasted
        return streams


async def test_an_open_connection_survives_a_refuse_window(start: Any) -> None:
    setup = await start({"kind": "refuse", "at": "100ms", "for": "200ms"})
    reader, writer = await setup.connect()
    await asyncio.sleep(0.15)
    assert await round_trip(reader, writer) < 1.0
    writer.close()


async def test_close_after_cuts_the_connection_after_n_bytes(start: Any) -> None:
    setup = await start({"kind": "close_after", "bytes": 100, "direction": "upstream"})
    reader, writer = await setup.connect()
    writer.write(b"a" * 60)
    assert await asyncio.wait_for(reader.readexactly(60), WAIT) == b"a" * 60
    writer.write(b"b" * 60)
    assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed: no echo of the rest
    await asyncio.wait_for(setup.echo.eof.wait(), WAIT)
    assert setup.echo.received == b"a" * 60 + b"b" * 40
    rows = await setup.stop()
    assert [r["kind"] for r in rows] == ["close_after"]


async def test_share_picks_connections_and_untouched_windows_leave_no_row(start: Any) -> None:
    setup = await start({"kind": "latency", "delay": "100ms", "share": 0.0})
    reader, writer = await setup.connect()
    assert await round_trip(reader, writer) < 0.1
    writer.close()
    assert await setup.stop() == []


async def _until(condition: Any) -> None:
    while not condition():  # noqa: ASYNC110 (polling observable state, bounded by the caller)
        await asyncio.sleep(0.01)
