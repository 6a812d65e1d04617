"""A gRPC scenario's ``.proto`` file: compiled when the scenario is loaded.

:func:`compile_proto` runs grpcio-tools' ``protoc`` on the file (with the
file's own directory, ``proto_paths`` and the well-known types on the import
path) and keeps the result as a :class:`ProtoFile`: a private descriptor pool
and the message classes built from it. Nothing is generated into
``sys.modules`` and nothing is imported, so two scenarios may use different
files that declare the same package.

:meth:`ProtoFile.method` finds the scenario's ``service`` and ``method`` and
says what kind of call it is. Every failure is a :class:`ProtoProblem` naming
the scenario field at fault (``proto``, ``service`` or ``method``) and what
was expected; the scenario model turns it into a one-line validation error.

protoc runs in a child process: its errors are written by C++ to file
descriptor 2, which only a child's pipe can capture without touching this
process's stderr. A file is compiled once per process and version of the file.
"""

from __future__ import annotations

import difflib
import functools
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor

CallKind = Literal["unary", "server_stream", "client_stream", "bidi_stream"]
# A field's descriptor: protobuf's Python class or upb's (the stubs tell them apart).
FieldInfo = Any
PROTOC_TIMEOUT_S = 60.0


class ProtoProblem(ValueError):
    """What is wrong with a scenario's proto, service or method; ``field`` names the key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Method:
    """One RPC of a compiled service, with the classes of its messages."""

    service: str  # full name, e.g. streambench.echo.Echo
    name: str
    kind: CallKind
    request: type[message.Message]
    response: type[message.Message]

    @property
    def path(self) -> str:
        """The HTTP/2 path of the call: ``/streambench.echo.Echo/Chat``."""
        return f"/{self.service}/{self.name}"


class ProtoFile:
    """A compiled ``.proto`` file: its services and message classes (a private pool)."""

    def __init__(self, path: str, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.path = path
        self.pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            self.pool.Add(file)
        main = self.pool.FindFileByName(files.file[-1].name)  # protoc lists it last
        self.services: dict[str, ServiceDescriptor] = {
            s.full_name: s for s in main.services_by_name.values()}

    def service(self, name: str | None) -> ServiceDescriptor:
        """The service named ``name`` (full or short name); None: the file's only one."""
        names = sorted(self.services)
        if not names:
            raise ProtoProblem("proto", f"{Path(self.path).name} declares no service")
        if name is None:
            if len(names) > 1:
                raise ProtoProblem("service", f"{Path(self.path).name} declares several "
                                   f"services; name one of {', '.join(names)}")
            return self.services[names[0]]
        if name in self.services:
            return self.services[name]
        short = [s for s in names if s.rpartition(".")[2] == name]
        if len(short) == 1:
            return self.services[short[0]]
        raise ProtoProblem("service", f"no service {name!r} in {Path(self.path).name}; "
                           f"expected one of {', '.join(names)}{_did_you_mean(name, names)}")

    def method(self, service: str | None, name: str) -> Method:
        """The method ``name`` of ``service``, or a ProtoProblem naming what is wrong."""
        found = self.service(service)
        methods = [m.name for m in found.methods]
        if name not in found.methods_by_name:
            raise ProtoProblem("method", f"no method {name!r} in service {found.full_name}; "
                               f"expected one of {', '.join(methods)}"
                               f"{_did_you_mean(name, methods)}")
        rpc = found.methods_by_name[name]
        kind: CallKind = ("bidi_stream" if rpc.client_streaming else "server_stream") \
            if rpc.server_streaming else ("client_stream" if rpc.client_streaming else "unary")
        return Method(service=found.full_name, name=name, kind=kind,
                      request=self.message_class(rpc.input_type),
                      response=self.message_class(rpc.output_type))

    @staticmethod
    def message_class(descriptor: Descriptor) -> type[message.Message]:
        return message_factory.GetMessageClass(descriptor)


def compile_proto(path: str, *, include: tuple[str, ...] = ()) -> ProtoFile:
    """Compile ``path`` (cached while the file is unchanged); raise ProtoProblem on failure."""
    file = Path(path)
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise ProtoProblem("proto", f"file not found: {path}") from None
    except OSError as exc:
        raise ProtoProblem("proto", f"cannot be read: {path}: {exc.strerror}") from None
    if not file.is_file():
        raise ProtoProblem("proto", f"not a file: {path}")
    return _compile(str(file.resolve()), include, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _compile(path: str, include: tuple[str, ...], mtime_ns: int, size: int) -> ProtoFile:
    """protoc in a child process; the key holds the file's mtime and size, so an edit
    recompiles."""
    del mtime_ns, size  # part of the cache key only
    well_known = str(resources.files("grpc_tools") / "_proto")
    roots = [str(Path(path).parent), *include, well_known]
    with tempfile.TemporaryDirectory(prefix="streambench-proto-") as tmp:
        out = os.path.join(tmp, "set.pb")
        argv = [sys.executable, "-m", "grpc_tools.protoc", *(f"-I{r}" for r in roots),
                "--include_imports", f"--descriptor_set_out={out}", path]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False,
                                  timeout=PROTOC_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ProtoProblem("proto", f"protoc did not finish in {PROTOC_TIMEOUT_S:g}s "
                               f"compiling {path}") from None
        if done.returncode != 0:
            raise ProtoProblem("proto", _protoc_error(done.stderr, path))
        data = Path(out).read_bytes()
    return ProtoFile(path, descriptor_pb2.FileDescriptorSet.FromString(data))


def _protoc_error(stderr: str, path: str) -> str:
    """protoc's first error line, the file named as the scenario names it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    first = lines[0] if lines else "protoc failed without a message"
    first = first.replace(path, Path(path).name)
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return f"does not compile: {first}{more}"


def _did_you_mean(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- fitting the scenario's messages to the method ------------------------------------

_STRINGS = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
INTEGERS = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
            FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32,
            FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED32,
            FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
            FieldDescriptor.TYPE_SFIXED64)


def correlation_fields(method: Method, *, cid_field: str, seq_field: str,
                       reply_id: str | None = None
                       ) -> tuple[FieldInfo | None, FieldInfo | None]:
    """The request's cid and seq fields (None where the type has none).

    Raises ProtoProblem (field ``message.cid_field``, ``message.seq_field`` or
    ``replies.id``) when a field has the wrong type, or when a bidirectional
    stream, whose replies are matched by the cid, lacks it in the request or the
    reply (``reply_id``: the path where replies carry it, else ``cid_field``).
    """
    request = method.request.DESCRIPTOR
    cid = request.fields_by_name.get(cid_field)
    seq = request.fields_by_name.get(seq_field)
    if cid is not None and (cid.type not in _STRINGS or is_repeated(cid)):
        raise ProtoProblem("message.cid_field", f"field {cid_field!r} of {request.full_name} "
                           "must be a single string to carry the correlation id")
    if seq is not None and (seq.type not in INTEGERS or is_repeated(seq)):
        raise ProtoProblem("message.seq_field", f"field {seq_field!r} of {request.full_name} "
                           "must be a single integer to carry the sequence number")
    if method.kind == "bidi_stream":
        _string_field(method, "requests", request, cid_field, "message.cid_field")
        reply = method.response.DESCRIPTOR
        if reply_id is None:
            _string_field(method, "replies", reply, cid_field, "message.cid_field")
        elif reply_id.split(".")[0] not in reply.fields_by_name:
            raise ProtoProblem("replies.id", f"replies ({reply.full_name}) have no field "
                               f"{reply_id.split('.')[0]!r}; expected one of "
                               f"{', '.join(reply.fields_by_name)}")
    return cid, seq


def _string_field(method: Method, kind: str, descriptor: Any, name: str, key: str) -> None:
    field = descriptor.fields_by_name.get(name)
    if field is None or field.type not in _STRINGS or is_repeated(field):
        raise ProtoProblem(key, f"{method.name} is a bidirectional stream, matched by "
                           f"correlation id: its {kind} ({descriptor.full_name}) need a "
                           f"string field {name!r}")


def encode_body(method: Method, body: dict[str, Any]) -> bytes:
    """A rendered body (placeholders filled in) as request bytes; ProtoProblem
    (field ``message.body``) when it does not fit the request type."""
    try:  # a flat body of the right Python types builds directly (~100x faster)
        return bytes(method.request(**body).SerializeToString())
    except (TypeError, ValueError, AttributeError):
        pass  # JSON spellings ("42" for an int64, camelCase names, enums by name, ...)
    try:
        return bytes(json_format.ParseDict(body, method.request()).SerializeToString())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ProtoProblem("message.body", f"does not fit {method.request.DESCRIPTOR.full_name}"
                           f": {first}") from None


def is_repeated(field: FieldInfo) -> bool:
    """protobuf >= 6 says ``is_repeated``; older versions only have ``label``."""
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        return bool(getattr(field, "label", None) == FieldDescriptor.LABEL_REPEATED)
    return bool(repeated)
