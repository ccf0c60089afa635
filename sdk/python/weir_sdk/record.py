"""Input records and fired timers, as views of one row of a columnar batch."""

import json

from .wit import TimeDomain

NO_TIMESTAMP = -(2**63)


def _span(buf, ends, row):
    start = ends[row - 1] if row else 0
    return buf[start:ends[row]]


class Record:
    """One input record: `key` and `value` are bytes; `timestamp` is None
    when the record has no event time."""

    __slots__ = ("key", "value", "_ts")

    def __init__(self, key, value, ts):
        self.key, self.value, self._ts = key, value, ts

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
