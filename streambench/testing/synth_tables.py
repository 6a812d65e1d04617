"""Per-message outcomes of a synthetic run and the event/fault tables built from them.

Private to :mod:`streambench.testing.synth`; kept apart so each module stays small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from streambench.testing.synth import InjectedFault, SyntheticRun

OK, LOST, ERROR_REPLY, CONN_ERROR, MALFORMED, NOT_SENT = range(6)
MS = 1_000_000
Mask = np.ndarray  # a boolean array over the run's messages


@dataclass
class Outcome:
    """What happened to each message (arrays indexed by message number)."""

    run: SyntheticRun
    rng: np.random.Generator
    intended: np.ndarray
    sent: np.ndarray
    recv: np.ndarray
    conn: np.ndarray
    seq: np.ndarray
    status: np.ndarray
    error_ns: np.ndarray
    duplicate: np.ndarray
    drifted: np.ndarray
    churn: list[tuple[int, int, str, str]]  # (ts, conn, kind, status) beyond open/close

    @classmethod
    def start(cls, run: SyntheticRun, intended: np.ndarray, sent: np.ndarray,
              rng: np.random.Generator) -> Outcome:
        n = len(intended)
        index = np.arange(n, dtype=np.int64)
        return cls(
            run=run, rng=rng, intended=intended, sent=sent, recv=sent.copy(),
            conn=(index % run.connections).astype(np.int32), seq=index // run.connections,
            status=np.zeros(n, np.int8), error_ns=np.zeros(n, np.int64),
            duplicate=np.zeros(n, bool), drifted=np.zeros(n, bool), churn=[],
        )  # fmt: skip

    def _pick(self, mask: Mask, fraction: float) -> Mask:
        picked: Mask = mask & (self.status == OK) & (self.rng.random(len(mask)) < fraction)
        return picked

    def apply(self, fault: InjectedFault, by_intended: np.ndarray, by_recv: np.ndarray) -> None:
        """Change the outcomes of the messages ``fault`` touches."""
        getattr(self, f"_apply_{fault.kind}", lambda *_: None)(fault, by_intended, by_recv)

    def _apply_stall(self, fault: InjectedFault, by_intended: Mask, by_recv: Mask) -> None:
        held = np.flatnonzero(by_recv & (self.status == OK))
        release = self.run.start_ns + int((fault.at + fault.duration) * 1e9)
        self.recv[held] = release + np.arange(len(held), dtype=np.int64) * 10_000
        self.fifo()

    def fifo(self) -> None:
        """One connection delivers replies in order: none overtakes an earlier one."""
        for conn in range(self.run.connections):
            replies = self.recv[conn :: self.run.connections]
            np.maximum.accumulate(replies, out=replies)

    def _apply_drop(self, fault: InjectedFault, by_intended: Mask, by_recv: Mask) -> None:
        self.status[self._pick(by_intended, fault.intensity)] = LOST

    def _apply_error(self, fault: InjectedFault, by_intended: Mask, by_recv: Mask) -> None:
        self.status[self._pick(by_intended, fault.intensity)] = ERROR_REPLY

    def _apply_malformed(self, fault: InjectedFault, by_intended: Mask, by_recv: Mask) -> None:
        self.status[self._pick(by_intended, fault.intensity)] = MALFORMED

    def _apply_duplicate(self, fault: InjectedFault, by_intended: Mask, by_recv: Mask) -> None:
        self.duplicate |= self._pick(by_intended, fault.intensity)

    def _apply_schema_drift(self, fault: InjectedFault, by_intended: Mask, by_recv: Mask) -> None:
        self.drifted |= self._pick(by_intended, fault.intensity)

    def _apply_reorder(self, fault: InjectedFault, by_intended: Mask, by_recv: Mask) -> None:
        step = self.run.connections
        first = np.flatnonzero(self._pick(by_intended, fault.intensity))
        first = first[first + step < len(self.recv)]
        second = first + step
        swap = (self.status[second] == OK) & (self.recv[first] < self.recv[second])
        first, second = first[swap], second[swap]
        self.recv[first], self.recv[second] = self.recv[second], self.recv[first].copy()

    def _apply_disconnect(self, fault: InjectedFault, by_intended: Mask, by_recv: Mask) -> None:
        count = max(1, int(fault.intensity))
        down = self.run.start_ns + int(fault.at * 1e9)
        up = down + int(fault.duration * 1e9)
        for conn in self.rng.choice(self.run.connections, size=count, replace=False):
            mine = self.conn == conn
            in_flight = mine & (self.sent < down) & (self.recv >= down) & (self.status == OK)
            self.status[in_flight] = CONN_ERROR
            self.error_ns[in_flight] = down
            self.status[mine & (self.intended >= down) & (self.intended < up)] = NOT_SENT
            self.churn.append((down, int(conn), "disconnect", "1006"))
            self.churn.append((up, int(conn), "connect", "101"))

    def finish(self) -> None:
        """Replies later than the timeout are timeouts, as the client records them."""
        late = (self.status == OK) & (self.recv - self.intended > int(self.run.timeout * 1e9))
        self.status[late] = LOST


def _frame(run: SyntheticRun, kind: str, **columns: Any) -> pl.DataFrame:
    n = len(columns["ts"])
    base = {
        "run_id": [run.run_id] * n if n else [],
        "kind": [kind] * n if n else [],
    }
    return pl.DataFrame({**base, **columns}, strict=False)


def _cid(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(cid=pl.format("{}-{}", "conn", "seq"))


def build_events(run: SyntheticRun, out: Outcome) -> pl.DataFrame:
    """All event rows, sorted by ``ts``, with EVENT_SCHEMA's columns and types."""
    s = out.status
    parts = [
        _sends(run, out, s != NOT_SENT),
        _replies(run, out, s == OK, duplicate=False),
        _replies(run, out, (s == OK) & out.duplicate, duplicate=True),
        _timeouts(run, out, (s == LOST) | (s == MALFORMED)),
        _errors(run, out, s == ERROR_REPLY, ts=out.recv, text="injected error"),
        _errors(run, out, s == CONN_ERROR, ts=out.error_ns, text="connection closed"),
        _errors(run, out, s == NOT_SENT, ts=out.intended, text="not connected"),
        _malformed(run, out, s == MALFORMED),
        _churn(run, out),
    ]
    events = pl.concat([p for p in parts if p.height], how="diagonal_relaxed")
    return _finish_columns(run, events.sort("ts", maintain_order=True))


def _sends(run: SyntheticRun, out: Outcome, m: Mask) -> pl.DataFrame:
    df = _frame(run, "send", ts=out.sent[m], conn=out.conn[m], seq=out.seq[m],
                intended_ns=out.intended[m], sent_ns=out.sent[m])  # fmt: skip
    return _cid(df).with_columns(
        payload=pl.format('{{"cid":"{}","seq":{},"text":"hello stream"}}', "cid", "seq")
        if run.payloads else pl.lit(None, pl.String)
    )  # fmt: skip


def _replies(run: SyntheticRun, out: Outcome, m: Mask, *, duplicate: bool) -> pl.DataFrame:
    recv = out.recv[m] + (50_000 if duplicate else 0)
    df = _cid(
        _frame(
            run,
            "recv",
            ts=recv,
            conn=out.conn[m],
            seq=out.seq[m],
            intended_ns=out.intended[m],
            sent_ns=out.sent[m],
            drift=out.drifted[m],
        )
    )
    normal = pl.format('{{"cid":"{}","seq":{},"text":"hello stream"}}', "cid", "seq")
    drifted = pl.format('{{"cid":"{}","seq":{},"body":"hello stream","v":2}}', "cid", "seq")
    return df.with_columns(
        latency_ms=(pl.col("ts") - pl.col("intended_ns")) / MS,
        service_ms=(pl.col("ts") - pl.col("sent_ns")) / MS,
        payload=pl.when("drift").then(drifted).otherwise(normal)
        if run.payloads else pl.lit(None, pl.String),
    ).drop("drift")  # fmt: skip


def _timeouts(run: SyntheticRun, out: Outcome, m: Mask) -> pl.DataFrame:
    ts = out.intended[m] + int(run.timeout * 1e9)
    df = _frame(run, "timeout", ts=ts, conn=out.conn[m], seq=out.seq[m],
                intended_ns=out.intended[m], sent_ns=out.sent[m])  # fmt: skip
    return _cid(df).with_columns(error=pl.lit("timeout"))


def _errors(run: SyntheticRun, out: Outcome, m: Mask, *, ts: np.ndarray, text: str) -> pl.DataFrame:
    df = _frame(run, "error", ts=ts[m], conn=out.conn[m], seq=out.seq[m],
                intended_ns=out.intended[m])  # fmt: skip
    df = _cid(df).with_columns(error=pl.lit(text))
    if text == "injected error" and run.payloads:
        df = df.with_columns(payload=pl.format('{{"cid":"{}","error":"injected error"}}', "cid"))
    return df


def _malformed(run: SyntheticRun, out: Outcome, m: Mask) -> pl.DataFrame:
    df = _frame(run, "error", ts=out.recv[m], conn=out.conn[m])
    return df.with_columns(error=pl.lit("malformed reply: not JSON"), payload=pl.lit("<redacted>"))


def _churn(run: SyntheticRun, out: Outcome) -> pl.DataFrame:
    first = run.start_ns - 10 * MS
    last = run.start_ns + int((run.duration + run.timeout) * 1e9)
    rows = [(first, c, "connect", "101") for c in range(run.connections)]
    rows += out.churn + [(last, c, "disconnect", "1000") for c in range(run.connections)]
    df = pl.DataFrame(rows, schema=["ts", "conn", "kind", "status"], orient="row")
    return df.with_columns(run_id=pl.lit(run.run_id))


def _finish_columns(run: SyntheticRun, events: pl.DataFrame) -> pl.DataFrame:
    from streambench.capture.schema import EVENT_SCHEMA

    events = events.with_columns(
        ts=pl.from_epoch("ts", time_unit="ns").dt.replace_time_zone("UTC"),
        protocol=pl.lit("websocket"),
        topic=pl.lit("/echo"),
        bytes=pl.col("payload").str.len_bytes().cast(pl.Int32),
        worker=pl.lit(0, pl.Int32),
    )
    for name in EVENT_SCHEMA.names:
        if name not in events.columns:
            events = events.with_columns(pl.lit(None).alias(name))
    return events.select(EVENT_SCHEMA.names)


def build_faults(run: SyntheticRun, client_kinds: frozenset[str]) -> pl.DataFrame:
    """One ground-truth row per injected fault (FAULT_SCHEMA columns)."""
    rows = [
        {
            "run_id": run.run_id,
            "source": "client" if f.kind in client_kinds else "target",
            "kind": f.kind,
            "start": run.start_ns + int(f.at * 1e9),
            "end": run.start_ns + int((f.at + f.duration) * 1e9),
            "conn": None,
            "cid": None,
            "detail": f'{{"intensity": {f.intensity}}}',
        }
        for f in run.faults
    ]
    schema = {"run_id": pl.String, "source": pl.String, "kind": pl.String, "start": pl.Int64,
              "end": pl.Int64, "conn": pl.Int32, "cid": pl.String, "detail": pl.String}  # fmt: skip
    df = pl.DataFrame(rows, schema=schema)
    return df.with_columns(
        pl.from_epoch(c, time_unit="ns").dt.replace_time_zone("UTC") for c in ("start", "end")
    )
