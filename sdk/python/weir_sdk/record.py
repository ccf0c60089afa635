"""Input records and fired timers, as views of one row of a columnar batch."""

import json
from enum import IntEnum

from .wit import TimeDomain

NO_TIMESTAMP = -(2**63)


def _span(buf, ends, row):
    start = ends[row - 1] if row else 0
    return buf[start:ends[row]]


class RowKind(IntEnum):
    """What a row does to the table a changelog describes (Flink's RowKind).
    Every record of an append-only stream, and every record of a plugin built
    for weir:operator@0.1.0, is an INSERT."""

    INSERT = 0
    UPDATE_BEFORE = 1
    UPDATE_AFTER = 2
    DELETE = 3

    @property
    def short(self):
        """Flink's short form: +I, -U, +U, -D."""
        return ("+I", "-U", "+U", "-D")[self]

    @property
    def retracts(self):
        """The row removes its key's earlier row (-U, -D)."""
        return self in (RowKind.UPDATE_BEFORE, RowKind.DELETE)


class Record:
    """One input record: `key` and `value` are bytes; `timestamp` is None
    when the record has no event time; `kind` is its `RowKind`."""

    __slots__ = ("key", "value", "_ts", "kind")

    def __init__(self, key, value, ts, kind=RowKind.INSERT):
        self.key, self.value, self._ts, self.kind = key, value, ts, kind

    @property
    def timestamp(self):
        return None if self._ts == NO_TIMESTAMP else self._ts

    def key_str(self):
        return self.key.decode()

    def value_str(self):
        return self.value.decode()

    def json(self):
        """The value parsed as JSON."""
        return json.loads(self.value)


class Timer:
    """A timer that fired: its key (bytes), time and `TimeDomain`."""

    __slots__ = ("key", "time", "domain")

    def __init__(self, key, time, domain):
        self.key, self.time, self.domain = key, time, domain

    def key_str(self):
        return self.key.decode()

    @property
    def is_event_time(self):
        return self.domain == TimeDomain.EVENT_TIME
