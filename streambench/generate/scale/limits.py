"""What one machine allows a run: open files, local ports, source addresses, memory.

A run that cannot fit fails before it opens a connection, in one line that
says which limit, the numbers, and what to change (docs/scale.md, "Many
connections"); a refusal the kernel gives mid-run (``EMFILE``,
``EADDRNOTAVAIL``, ``ENOBUFS``) is translated the same way by
:func:`kernel_refusal`. Nothing here changes a system setting: raising the
soft open-file limit to the hard one is all a process may do by itself.

Source addresses: one local address can open at most one connection per
local port to a given target ``host:port``, i.e. the ephemeral port range
(``net.ipv4.ip_local_port_range``, 28,232 ports by default). Connection *g*
(its global index) is opened from ``addresses[g % len(addresses)]``, bound
with ``IP_BIND_ADDRESS_NO_PORT`` so that the kernel picks the port per
4-tuple at connect time and every address gets the whole range.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import math
import resource
import socket
from collections.abc import Sequence
from pathlib import Path

from streambench.errors import ConfigError, ResourceLimit

FILES_HEADROOM = 100  # descriptors a process needs besides its connections (parts, pipes, logs)
CLIENT_BYTES_PER_CONNECTION = 16 << 10  # measured ~10 KB in the client + the kernel's socket
TARGET_BYTES_PER_CONNECTION = 24 << 10  # the built-in target: ~15 KB + the kernel's socket
PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
MAX_NETWORK_ADDRESSES = 1024  # a network in target.source_addresses gives at most this many


def raise_open_files() -> tuple[int, int]:
    """Raise the open-file soft limit to the hard limit; return ``(soft, hard)`` now.

    Every connection is a file descriptor (and another in the target), so a
    soft limit of 1024 caps a run at about a thousand connections.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def connections_per_process() -> int:
    """How many connections one process can hold with the open-file hard limit here."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 1 << 30
    return max(1, hard - FILES_HEADROOM)


def processes_for(connections: int, *, fill: float = 1.0) -> int:
    """How many processes hold ``connections`` with this machine's open-file limit.

    ``fill`` < 1 leaves headroom where the split is uneven (the kernel spreads a
    multi-process target's connections by hash: use 0.85 there).
    """
    return max(1, math.ceil(connections / max(1, int(connections_per_process() * fill))))


def check_open_files(connections: int) -> None:
    """Raise the soft limit; ResourceLimit if this process still cannot hold ``connections``."""
    soft, hard = raise_open_files()
    need = connections + FILES_HEADROOM
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    processes = math.ceil(connections / max(1, soft - FILES_HEADROOM))
    raise ResourceLimit(
        "open files", f"{connections:,} connections need {need:,} descriptors in one process, "
        f"its limit is {soft:,} (hard {hard:,})",
        f"raise the hard limit (ulimit -Hn; LimitNOFILE=; docs/scale.md) or split the "
        f"connections over {processes} processes (--workers {processes})")


def ephemeral_ports() -> tuple[int, int] | None:
    """``net.ipv4.ip_local_port_range`` as ``(low, high)``; None where it cannot be read."""
    try:
        low, high = (int(part) for part in PORT_RANGE.read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def check_local_ports(connections: int, sources: Sequence[str], target: str) -> None:
    """ResourceLimit if ``connections`` to one ``host:port`` need more local ports than exist."""
    ports = ephemeral_ports()
    if ports is None:
        return
    low, high = ports
    per_address = high - low + 1
    addresses = max(1, len(sources))
    if math.ceil(connections / addresses) <= per_address:
        return
    needed = math.ceil(connections / per_address)
    origin = f"{addresses} source addresses" if sources else "one source address"
    raise ResourceLimit(
        "local ports", f"{connections:,} connections to {target} from {origin} need "
        f"{math.ceil(connections / addresses):,} ports per address, "
        f"net.ipv4.ip_local_port_range ({low}-{high}) gives {per_address:,}",
        f"spread them over at least {needed} addresses (target.source_addresses, "
        f"--source-address; e.g. 127.0.0.1/29 locally) or widen the range")


def check_memory(connections: int, *, per_connection: int) -> None:
    """ResourceLimit if ``connections`` would not fit in the memory available now."""
    import psutil

    available = psutil.virtual_memory().available
    need = connections * per_connection
    if need <= available:
        return
    raise ResourceLimit(
        "memory", f"{connections:,} connections need about {need / 2**30:.1f} GiB here "
        f"({per_connection >> 10} KB each), {available / 2**30:.1f} GiB is available",
        "use fewer connections per machine (--cluster) or free memory")


def resolve_source_addresses(entries: Sequence[str]) -> tuple[str, ...]:
    """The local addresses ``target.source_addresses`` names, each checked to be bindable.

    An entry is an address (``127.0.0.2``), a network (``127.0.0.0/29``: its
    host addresses) or an interface name (``eth0``: its addresses).
    """
    addresses: list[str] = []
    for index, entry in enumerate(entries):
        for address in _expand(entry, f"target.source_addresses[{index}]"):
            if address not in addresses:
                addresses.append(address)
    for address in addresses:
        _check_bindable(address)
    return tuple(addresses)


def source_for(addresses: Sequence[str], global_conn: int) -> str | None:
    """The source address of connection ``global_conn``: round robin, None for none."""
    return addresses[global_conn % len(addresses)] if addresses else None


def _expand(entry: str, where: str) -> list[str]:
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(entry))]
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ConfigError(f"{where}: {entry!r} is not a network ({exc}); "
                              "write it as 127.0.0.0/29") from None
        hosts = [str(a) for _, a in zip(range(MAX_NETWORK_ADDRESSES), network.hosts(),
                                        strict=False)]
        return hosts or [str(network.network_address)]
    return _interface_addresses(entry, where)


def _interface_addresses(name: str, where: str) -> list[str]:
    import psutil

    interfaces = psutil.net_if_addrs()
    if name not in interfaces:
        known = ", ".join(sorted(interfaces)) or "none"
        raise ConfigError(f"{where}: {name!r} is neither an address, a network nor an "
                          f"interface of this machine (interfaces: {known})")
    found = [a.address for a in interfaces[name]
             if a.family in (socket.AF_INET, socket.AF_INET6) and "%" not in a.address]
    if not found:
        raise ConfigError(f"{where}: interface {name!r} has no IP address")
    return found


def _check_bindable(address: str) -> None:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError as exc:
            raise ResourceLimit("target.source_addresses",
                                f"{address} is not an address of this machine "
                                f"({exc.strerror or exc})",
                                "list addresses this machine has (ip addr; any 127.x.y.z "
                                "on loopback)") from None


def kernel_refusal(exc: OSError, *, source: str | None = None) -> ResourceLimit | None:
    """The kernel's refusal of a new connection as a ResourceLimit; None if it is not one."""
    code = exc.errno
    if code == errno.EMFILE:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return ResourceLimit("open files", f"this process reached its limit of {soft:,} "
                             f"descriptors (hard {hard:,})",
                             "raise the hard limit (ulimit -Hn; docs/scale.md) or use "
                             "more --workers")
    if code == errno.ENFILE:
        return ResourceLimit("open files", "the system's file table is full (fs.file-max)",
                             "raise fs.file-max or use fewer connections per machine")
    if code in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
        origin = f"source address {source}" if source else "the default source address"
        return ResourceLimit("local ports", f"no free local port left on {origin} "
                             f"({exc.strerror})",
                             "add source addresses (target.source_addresses, "
                             "--source-address) or widen net.ipv4.ip_local_port_range")
    if code in (errno.ENOBUFS, errno.ENOMEM):
        return ResourceLimit("memory", f"the kernel refused socket memory ({exc.strerror})",
                             "raise net.ipv4.tcp_mem / free memory, or use fewer "
                             "connections per machine")
    return None
