"""Opening a gRPC channel for one connection, and grpcio's errors in our words.

One channel per streambench connection, each on a TCP connection of its own
(``grpc.use_local_subchannel_pool``: grpcio would otherwise share one socket
between channels to the same address, and ``load.connections`` would mean
nothing). grpcio's own retries are off (a retried call would hide a failure we
are there to measure); its reconnect backoff follows ``target.reconnect``.

:func:`open_channel` is the boundary where grpcio's failures at start become
streambench's: a refused or silent address is
:class:`~streambench.errors.TargetUnreachable`, a TCP peer that never
completes the TLS / HTTP/2 handshake a :class:`~streambench.errors.TargetError`,
unreadable TLS files a :class:`~streambench.errors.ConfigError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc

from streambench.errors import ConfigError, TargetError, TargetUnreachable
from streambench.generate.protocols.base import os_reason
from streambench.scenario.model import GrpcTarget, GrpcTls, Load

DEFAULT_PORTS = {"grpc": 80, "grpcs": 443}


def authority(url: str) -> tuple[str, int, bool]:
    """``grpc://host:port`` -> ``(host, port, tls)``; ConfigError for another URL."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(f"target.url: not a gRPC URL: {url!r} (expected grpc://host:port "
                          "or grpcs://host:port)")
    return parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme], parts.scheme == "grpcs"


def channel_options(target: GrpcTarget, load: Load) -> list[tuple[str, Any]]:
    """grpcio channel arguments for one connection (see the module docstring)."""
    reconnect = target.reconnect
    options: list[tuple[str, Any]] = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.enable_retries", 0),
        ("grpc.max_receive_message_length", target.max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", max(1, int(reconnect.initial * 1000))),
        ("grpc.min_reconnect_backoff_ms", max(1, int(reconnect.initial * 1000))),
        ("grpc.max_reconnect_backoff_ms", max(1, int(reconnect.max * 1000))),
    ]
    if target.tls is not None and target.tls.server_name:
        options.append(("grpc.ssl_target_name_override", target.tls.server_name))
    if load.heartbeat:
        options += [("grpc.keepalive_time_ms", int(load.heartbeat * 1000)),
                    ("grpc.keepalive_permit_without_calls", 1)]
    return options


def credentials(tls: GrpcTls | None) -> grpc.ChannelCredentials:
    """TLS credentials from the scenario's PEM files (None: the system's roots)."""
    if tls is None:
        return grpc.ssl_channel_credentials()
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca, "target.tls.ca"),
        private_key=_read(tls.key, "target.tls.key"),
        certificate_chain=_read(tls.cert, "target.tls.cert"))


def _read(path: str | None, field: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from None


async def open_channel(url: str, target: GrpcTarget, load: Load, *,
                       dial: tuple[str, int] | None = None) -> grpc.aio.Channel:
    """A ready channel to ``url``, or the error that says why there is none.

    ``dial`` is where the TCP connection goes (the fault proxy) when it is not
    the URL's address; the URL still names the service (``:authority``, TLS name).
    """
    host, port, tls = authority(url)
    timeout = target.connect_timeout
    options = channel_options(target, load)
    if dial is not None:
        options += [("grpc.default_authority", f"{host}:{port}")]
        if tls:
            options += [("grpc.ssl_target_name_override", host)]
        host, port = dial
    await _probe(url, host, port, within_s=timeout)
    address = f"{host}:{port}"
    channel = (grpc.aio.secure_channel(address, credentials(target.tls), options=options)
               if tls else grpc.aio.insecure_channel(address, options=options))
    try:
        async with asyncio.timeout(timeout):
            await channel.channel_ready()
    except TimeoutError:
        await channel.close()
        what = "TLS or HTTP/2" if tls else "HTTP/2"
        raise TargetError(f"target {url} accepts TCP connections but no gRPC channel came "
                          f"up within {timeout:g}s ({what} handshake failed?)") from None
    except BaseException:
        await channel.close()
        raise
    return channel


async def _probe(url: str, host: str, port: int, *, within_s: float) -> None:
    """A plain TCP connect first: grpcio only ever says "not ready", never why."""
    try:
        async with asyncio.timeout(within_s):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError as exc:
        raise TargetUnreachable(url, f"no answer in {within_s:g}s") from exc
    except OSError as exc:
        raise TargetUnreachable(url, os_reason(exc)) from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def status_of(exc: grpc.aio.AioRpcError) -> tuple[str, str]:
    """``(status, error)`` of a failed call: ``("UNAVAILABLE", "UNAVAILABLE: <details>")``."""
    code = exc.code()
    name = code.name if code is not None else "UNKNOWN"
    details = exc.details()
    return name, f"{name}: {details}" if details else name


def closed_under_us() -> bool:
    """In ``except asyncio.CancelledError``: True when grpcio raised it because the call's
    channel was closed (a disconnect fault), False when this task is being cancelled."""
    task = asyncio.current_task()
    return task is not None and not task.cancelling()
