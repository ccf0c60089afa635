"""Keyed state handles. Values are stored as JSON (UTF-8); reducing state
holds one integer per key combined on the host."""

import json

from .wit import state as wit

Reducer = wit.Reducer


def _enc(v):
    return json.dumps(v, separators=(",", ":")).encode()


def _dec(b):
    return json.loads(b)


def _declare(name, kind, ttl_ms):
    try:
        return wit.declare(wit.StateDescriptor(name, kind, ttl_ms))
    except Exception as e:  # componentize_py_types.Err
        raise RuntimeError(f"cannot declare state '{name}': {getattr(e, 'value', e)}") from None


class Column:
    """A value state's values for every row of the current call, fetched in one
    host call on first use; writes go back in one call when the call ends."""

    __slots__ = ("first_row", "bytes", "ends", "present", "written")

    def __init__(self, state_id):
        c = wit.value_get_column(state_id)
        self.first_row, self.bytes, self.ends, self.present = c.first_row, c.bytes, c.ends, c.present
        self.written = {}

    def get(self, row):
        first = self.first_row[row]
        if first in self.written:
            return self.written[first]
        if not self.present[first]:
            return None
        return self.bytes[self.ends[first - 1] if first else 0:self.ends[first]]

    def put(self, row, value):
        self.written[self.first_row[row]] = value

    def flush(self, state_id):
        if not self.written:
            return
        rows, ends, present, buf = [], [], [], bytearray()
        for row, v in self.written.items():
            rows.append(row)
            if v is not None:
                buf += v
            ends.append(len(buf))
            present.append(v is not None)
        wit.value_set_rows(state_id, rows, bytes(buf), ends, present)
        self.written = {}


class ValueState:
    """One JSON value per key: `get(ctx)` (None if unset), `set(ctx, v)`, `clear(ctx)`."""

    def __init__(self, name, ttl_ms=None):
        self.name = name
        self.id = _declare(name, wit.StateKind_Value(), ttl_ms)

    def get(self, ctx):
        b = ctx._column(self.id).get(ctx.row)
        return None if b is None else _dec(b)

    def set(self, ctx, value):
        ctx._column(self.id).put(ctx.row, _enc(value))

    def clear(self, ctx):
        ctx._column(self.id).put(ctx.row, None)


class MapState:
    """A map per key from JSON values to JSON values."""

    def __init__(self, name, ttl_ms=None):
        self.name = name
        self.id = _declare(name, wit.StateKind_Map(), ttl_ms)

    def get(self, ctx, key, default=None):
        b = wit.map_get(self.id, ctx.row, _enc(key))
        return default if b is None else _dec(b)

    def contains(self, ctx, key):
        return wit.map_get(self.id, ctx.row, _enc(key)) is not None

    def put(self, ctx, key, value):
        wit.map_put(self.id, ctx.row, _enc(key), _enc(value))

    def remove(self, ctx, key):
        """Returns whether the entry existed."""
        return wit.map_remove(self.id, ctx.row, _enc(key))

    def entries(self, ctx):
        """All (key, value) pairs, in no particular order."""
        return [(_dec(k), _dec(v)) for k, v in wit.map_entries(self.id, ctx.row)]

    def clear(self, ctx):
        wit.clear(self.id, ctx.row)


class ListState:
    """A list of JSON values per key."""

    def __init__(self, name, ttl_ms=None):
        self.name = name
        self.id = _declare(name, wit.StateKind_List(), ttl_ms)

    def add(self, ctx, value):
        wit.list_add(self.id, ctx.row, _enc(value))

    def get(self, ctx):
        return [_dec(b) for b in wit.list_get(self.id, ctx.row)]

    def update(self, ctx, values):
        wit.list_update(self.id, ctx.row, [_enc(v) for v in values])

    def clear(self, ctx):
        wit.clear(self.id, ctx.row)


class ReducingState:
    """One integer per key; `add(ctx, n)` combines on the host and returns the result."""

    def __init__(self, name, reducer, ttl_ms=None):
        self.name = name
        self.id = _declare(name, wit.StateKind_Reducing(reducer), ttl_ms)

    def add(self, ctx, value):
        return wit.reducing_add(self.id, ctx.row, value)

    def get(self, ctx):
        return wit.reducing_get(self.id, ctx.row)

    def clear(self, ctx):
        wit.clear(self.id, ctx.row)
