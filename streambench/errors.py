"""Every error streambench raises on purpose.

The tree::

    StreambenchError                 root: the CLI prints str(exc) on one line, exit 2
    ├── ScenarioError                a scenario file is unreadable or invalid (all problems)
    ├── ConfigError                  bad option, missing secret, bad rule file, ...
    ├── TargetError                  the system under test could not be used
    │   └── TargetUnreachable        refused / DNS / connect timeout at start
    ├── ResourceLimit                this machine refused what a run needs (open files,
    │                                local ports, source addresses, memory)
    ├── StoreError                   the store cannot be read or written
    │   ├── RunNotFound              no run with that id in the store
    │   ├── RunIdTaken               a new run asked for a run id already used in the store
    │   └── RunInProgress            a gate or a mutation met a run still being written
    ├── ReportError                  a report could not be rendered (notebook, cell)
    └── RunInterrupted               a run was stopped by SIGINT/SIGTERM (captured data kept)

Third-party exceptions are translated at the boundary that calls the library
(`raise ... from exc`) so users never see a traceback for bad input.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streambench.scrub import scrub


class StreambenchError(Exception):
    """Root of every error streambench raises deliberately.

    ``str()`` of every one has the process's known secrets removed
    (:func:`streambench.scrub.scrub`): the message a notebook shows, and may save
    in a report, is the line the CLI prints. A subclass's own ``__str__`` is
    wrapped when the class is made.
    """

    def __str__(self) -> str:
        return scrub(super().__str__())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__str__")
        if own is not None:
            setattr(cls, "__str__", _scrubbed(own))  # noqa: B010 -- a method replaced


def _scrubbed(method: Callable[[Any], str]) -> Callable[[Any], str]:
    @functools.wraps(method)
    def __str__(self: Any) -> str:
        return scrub(method(self))

    return __str__


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file: where it is and what was expected."""

    path: str  # field path such as "load.stages[1].rate", or "" for the whole file
    message: str
    line: int | None = None

    def render(self, file: str) -> str:
        where = file if self.line is None else f"{file}:{self.line}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ScenarioError(StreambenchError):
    """A scenario file is invalid; carries every problem found, not just the first."""

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        super().__init__(file, tuple(problems))
        self.file = file
        self.problems = tuple(problems)

    def __str__(self) -> str:
        lines = [p.render(self.file) for p in self.problems]
        if len(lines) == 1:
            return lines[0]
        return f"{self.file}: {len(lines)} problems\n" + "\n".join(f"  {ln}" for ln in lines)


class ConfigError(StreambenchError):
    """A bad option, a missing secret, an unusable rule file."""


class TargetError(StreambenchError):
    """The system under test could not be used."""


class TargetUnreachable(TargetError):
    """The target refused or did not answer at start: nothing to measure."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"target {self.url} is unreachable: {self.reason}"


class ResourceLimit(StreambenchError):
    """This machine refused (or would refuse) what a run needs; says what to raise.

    ``resource`` is what ran out (``open files``, ``local ports``, ``memory``,
    ``target.source_addresses``), ``detail`` the numbers, ``fix`` what to change.
    """

    def __init__(self, resource: str, detail: str, fix: str) -> None:
        super().__init__(resource, detail, fix)
        self.resource = resource
        self.detail = detail
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.resource}: {self.detail}; {self.fix}"


class StoreError(StreambenchError):
    """The store cannot be read or written."""


class RunNotFound(StoreError):
    def __init__(self, store: str, run_id: str) -> None:
        super().__init__(store, run_id)
        self.store = store
        self.run_id = run_id

    def __str__(self) -> str:
        return f"no run {self.run_id!r} in store {self.store} (see `streambench runs`)"


class RunIdTaken(StoreError):
    """Two runs never share an id: the second is refused before it writes anything."""

    def __init__(self, store: str, run_id: str) -> None:
        super().__init__(store, run_id)
        self.store = store
        self.run_id = run_id

    def __str__(self) -> str:
        return (f"run id {self.run_id!r} is already used in store {self.store} "
                "(pick another --run-id, or leave it out for a fresh one)")


class RunInProgress(StoreError):
    """A run is still being written: its numbers are not final, its files still change."""

    def __init__(self, store: str, manifest: Mapping[str, Any], *, doing: str = "") -> None:
        super().__init__(store, manifest.get("run_id"))
        self.store = store
        self.run_id = str(manifest.get("run_id"))
        self.where = f"pid {manifest.get('pid')} on {manifest.get('host')}"
        self.doing = doing

    def __str__(self) -> str:
        doing = f"cannot {self.doing}: " if self.doing else ""
        return (f"{doing}run {self.run_id} in store {self.store} is still being written "
                f"({self.where}); wait until it ends")


class ReportError(StreambenchError):
    """A report could not be produced: unknown notebook, or a cell failed."""


class RunInterrupted(StreambenchError):
    """A run was stopped by a signal; what it captured was flushed and kept."""

    def __init__(self, run_id: str, signal_name: str) -> None:
        super().__init__(run_id, signal_name)
        self.run_id = run_id
        self.signal_name = signal_name

    def __str__(self) -> str:
        return f"run {self.run_id} interrupted by {self.signal_name}; captured events were kept"
