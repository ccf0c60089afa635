"""What an operator sees: `OpenContext` while it opens, `Context` per record."""

import json

from . import state as _state
from .record import NO_TIMESTAMP, RowKind
from .wit import runtime, timers, types

__all__ = ["NO_TIMESTAMP", "OpenContext", "Context", "SideOutput", "Counter"]


class SideOutput:
    """A declared side output (see `OpenContext.side_output`)."""

    __slots__ = ("number", "name")

    def __init__(self, number, name):
        self.number, self.name = number, name


class Counter:
    """A declared counter metric (see `OpenContext.counter`)."""

    __slots__ = ("_id",)

    def __init__(self, id_):
        self._id = id_

    def add(self, delta=1):
        runtime.counter_add(self._id, delta)


class OpenContext:
    """The operator's configuration and the declarations of its states,
    side outputs and counters; only valid during `open`."""

    def __init__(self, config):
        self._config = dict(config)

    def config(self, key, default=None):
        """A value of the operator's `config` map in the pipeline spec."""
        return self._config.get(key, default)

    @property
    def config_entries(self):
        return dict(self._config)

    def task_info(self):
        """pipeline, operator, task_index and parallelism of this instance."""
        return runtime.get_task_info()

    def value_state(self, name, ttl_ms=None):
        """One JSON value per key."""
        return _state.ValueState(name, ttl_ms)

    def map_state(self, name, ttl_ms=None):
        """A map per key; map keys and values are JSON values."""
        return _state.MapState(name, ttl_ms)

    def list_state(self, name, ttl_ms=None):
        """A list of JSON values per key."""
        return _state.ListState(name, ttl_ms)

    def reducing_state(self, name, reducer, ttl_ms=None):
        """One integer per key, combined on the host with `Reducer.SUM/MIN/MAX`."""
        return _state.ReducingState(name, reducer, ttl_ms)

    def side_output(self, name):
        return SideOutput(_ok(runtime.declare_output, name), name)

    def counter(self, name):
        return Counter(_ok(runtime.declare_counter, name))

    def log(self, level, message):
        runtime.log(level, message)


def _ok(f, *args):
    """Call a binding returning result<_, string>; errors become exceptions."""
    try:
        return f(*args)
    except Exception as e:  # componentize_py_types.Err
        raise RuntimeError(str(getattr(e, "value", e))) from None


class Context:
    """Emitting, keyed state scope and timers while one record or timer is
    handled. State accessed with it is the current record's key's."""

    def __init__(self):
        self.row = 0
        self.timestamp = NO_TIMESTAMP
        self._keys = bytearray()
        self._key_ends = []
        self._values = bytearray()
        self._value_ends = []
        self._times = []
        self._outputs = []
        self._causes = []
        self._side = False
        self._columns = {}
        # One RowKind per emitted row once a row other than an insert is emitted.
        self._kinds = []

    def emit(self, key, value, timestamp=None, kind=RowKind.INSERT):
        """Emit a record (str or bytes key and value) to the main output, with
        the current record's event time unless `timestamp` is given. `kind`
        (a `RowKind`) is for plugins built for weir:operator@0.3.0, which read
        and write changelogs."""
        self._push(0, key, value, timestamp)
        self._kind(kind)

    def emit_json(self, key, value, timestamp=None, kind=RowKind.INSERT):
        """Emit a record whose value is `value` as compact JSON."""
        self._push(0, key, json.dumps(value, separators=(",", ":")), timestamp)
        self._kind(kind)

    def _kind(self, kind):
        if not self._kinds:
            if kind == RowKind.INSERT:
                return
            self._kinds = [RowKind.INSERT] * len(self._key_ends)
        self._kinds[-1] = RowKind(kind)

    def emit_to(self, output, key, value, timestamp=None):
        """Emit a record to a `SideOutput`."""
        self._push(output.number, key, value, timestamp)
        self._side = True

    def _push(self, output, key, value, timestamp):
        if isinstance(key, str):
            key = key.encode()
        if isinstance(value, str):
            value = value.encode()
        self._keys += key
        self._key_ends.append(len(self._keys))
        self._values += value
        self._value_ends.append(len(self._values))
        self._times.append(self.timestamp if timestamp is None else timestamp)
        self._outputs.append(output)
        self._causes.append(self.row)
        if self._kinds:
            self._kinds.append(RowKind.INSERT)

    def register_event_time_timer(self, time):
        timers.register_event_time_timer(self.row, time)

    def delete_event_time_timer(self, time):
        timers.delete_event_time_timer(self.row, time)

    def register_processing_time_timer(self, time):
        timers.register_processing_time_timer(self.row, time)

    def delete_processing_time_timer(self, time):
        timers.delete_processing_time_timer(self.row, time)

    def current_watermark(self):
        return timers.current_watermark()

    def current_processing_time(self):
        return timers.current_processing_time()

    def log(self, level, message):
        runtime.log(level, message)

    def _column(self, state_id):
        col = self._columns.get(state_id)
        if col is None:
            col = self._columns[state_id] = _state.Column(state_id)
        return col

    def _finish(self):
        """What was emitted, and each emitted row's RowKind ([]: all inserts)."""
        for state_id, col in self._columns.items():
            col.flush(state_id)
        batch = types.Batch(bytes(self._keys), self._key_ends, bytes(self._values), self._value_ends, self._times, [])
        return types.Emitted(batch, self._outputs if self._side else [], self._causes), self._kinds
