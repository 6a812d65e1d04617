"""Spreading connections over source addresses: past the ~64K 4-tuples one address allows.

One local address reaches one target ``host:port`` at most once per ephemeral
port. With ``target.source_addresses`` connection *g* comes from
``addresses[g % n]``; the server sees it, and the run checks up front that no
address is asked for more connections than it has ports.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.errors import ConfigError, ResourceLimit
from streambench.generate.scale.limits import (
    check_local_ports,
    ephemeral_ports,
    resolve_source_addresses,
)
from tests.helpers import TIME_SCALE, scenario

ROOT = Path(__file__).resolve().parents[4]

SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.8/30"]  # the network gives .9 and .10
ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.9", "127.0.0.10")


async def test_each_connection_comes_from_its_source_address(store: Store):
    seen: dict[int, set[tuple[str, int]]] = collections.defaultdict(set)

    async def handler(ws: ServerConnection) -> None:
        peer = ws.remote_address[:2]
        async for message in ws:
            conn = int(str(message).rsplit('"cid":"', 1)[1].split("-", 1)[0])
            seen[conn].add(peer)
            await ws.send(message)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        sc = scenario(target={"url": f"ws://127.0.0.1:{port}/echo", "source_addresses": SOURCES},
                      load={"connections": 24, "rate": 96, "duration": "0.5s"})
        result = await run_async(sc, store=store)

    assert result.status == "completed"
    assert result.summary["received"] == result.summary["sent"] == 48
    assert sorted(seen) == list(range(24))
    for conn, peers in seen.items():  # one TCP connection each, from its address
        ((address, _),) = peers
        assert address == ADDRESSES[conn % len(ADDRESSES)]
    four_tuples = {peer for peers in seen.values() for peer in peers}
    assert len(four_tuples) == 24
    per_address = collections.Counter(address for address, _ in four_tuples)
    assert per_address == {address: 6 for address in ADDRESSES}


def test_four_addresses_hold_100k_connections_where_one_cannot():
    ports = ephemeral_ports()
    assert ports is not None  # Linux
    per_address = ports[1] - ports[0] + 1
    addresses = resolve_source_addresses(SOURCES)
    assert addresses == ADDRESSES
    target = "127.0.0.1:8765"
    connections = 100_000
    assert len(addresses) * per_address > connections > 65_536
    check_local_ports(connections, addresses, target)  # fits: 25,000 per address
    with pytest.raises(ResourceLimit) as refused:
        check_local_ports(connections, (), target)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("local ports: 100,000 connections to 127.0.0.1:8765 from one "
                              "source address need 100,000 ports per address")
    assert f"at least {-(-connections // per_address)} addresses" in message


async def test_too_many_connections_for_one_address_fail_before_any_opens(store: Store):
    ports = ephemeral_ports()
    assert ports is not None
    too_many = ports[1] - ports[0] + 2
    # nothing listens on this port: the run must fail on the count, not on a connect
    sc = scenario(target={"url": "ws://127.0.0.1:9/echo"},
                  load={"connections": too_many, "rate": 1, "duration": "1s"})
    with pytest.raises(ResourceLimit, match=r"^local ports: .*target\.source_addresses"):
        await run_async(sc, store=store)


def test_an_address_this_machine_does_not_have_is_one_clear_error():
    with pytest.raises(ResourceLimit, match=r"^target\.source_addresses: 192\.0\.2\.7 is not an "
                       r"address of this machine"):
        resolve_source_addresses(["192.0.2.7"])
    with pytest.raises(ConfigError, match=r"^target\.source_addresses\[1\]: 'nosuchif0' is "
                       r"neither an address, a network nor an interface of this machine"):
        resolve_source_addresses(["127.0.0.2", "nosuchif0"])


def test_an_interface_name_gives_its_addresses():
    assert "127.0.0.1" in resolve_source_addresses(["lo"])


def test_three_addresses_open_more_connections_than_the_port_range_holds():
    """The 64K limit at a small scale: in a network namespace of its own (no privilege
    needed, nothing else on the machine touched) the ephemeral range is 8 ports; 18
    connections from three 127.0.0.x addresses all open and answer, the same local
    ports serving several addresses, while one address is refused up front."""
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, "-m", "tests.generate.protocols.websocket.narrow_ports"],
        capture_output=True, text=True, timeout=60 * TIME_SCALE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 0, f"unshare -rn (user and network namespaces) failed: {done.stderr}"
    figures = json.loads(done.stdout)
    low, high = figures["ports"]
    spread = figures["spread"]
    assert spread["status"] == "completed"
    assert spread["sent"] == spread["received"] == 2 * 18
    four_tuples = {tuple(peer) for peer in spread["peers"]}  # with the server's fixed end
    assert len(four_tuples) == 18 > high - low + 1
    assert all(low <= port <= high for _, port in four_tuples)
    by_port = collections.Counter(port for _, port in four_tuples)
    assert max(by_port.values()) > 1  # one local port, several source addresses
    assert collections.Counter(address for address, _ in four_tuples) == {
        "127.0.0.2": 6, "127.0.0.3": 6, "127.0.0.4": 6}
    one = figures["one_address"]
    assert one["peers"] == []  # refused before any connection opened
    assert one["error"].startswith("local ports: 18 connections to 127.0.0.1:8765 from one "
                                   "source address need 18 ports per address")
