"""The `Operator` base class and the glue to the exported `handler` interface."""

import traceback

from componentize_py_types import Err

from .context import Context, OpenContext
from .record import Record, RowKind, Timer
from .wit import changelog, exports, types


class Operator:
    """A stream operator; one instance runs per parallel task.

    Override `open(ctx)` to read config and declare states, side outputs and
    counters, `process(ctx, record)` for each record and optionally
    `on_timer(ctx, timer)`. Raise any exception to fail on the current record.
    """

    def open(self, ctx):
        pass

    def process(self, ctx, record):
        raise NotImplementedError("an Operator must implement process(ctx, record)")

    def on_timer(self, ctx, timer):
        pass


def _message(e):
    msg = str(e) or type(e).__name__
    if not isinstance(e, (ValueError, RuntimeError)) and type(e).__name__ != "WeirError":
        tb = traceback.extract_tb(e.__traceback__)
        where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
        msg = f"{type(e).__name__}: {msg}{where}"
    return msg


def _reply(emitted, kinds):
    """The reply of the world the plugin was built for: 0.3.0 carries the
    emitted rows' kinds; 0.1.0 has none, so emitting one is an error."""
    if changelog is not None:
        return changelog.ChangelogEmitted(emitted, [changelog.RowKind(int(k)) for k in kinds])
    for i, k in enumerate(kinds):
        if k != RowKind.INSERT:
            raise Err(types.OperatorError(
                emitted.causes[i],
                f"it emitted a {k.short} row, but it is built for weir:operator@0.1.0, which carries no row kinds: "
                'set world = "weir:operator/changelog-operator@0.3.0" under [tool.weir] in its pyproject.toml',
            ))
    return emitted


def export(operator_class):
    """The `Handler` class componentize-py exports, running `operator_class`.
    Use it in the plugin's app.py: `Handler = export(MyOperator)`. It serves
    either world: weir:operator@0.1.0, or weir:operator@0.3.0 (records with
    row kinds) when pyproject.toml says `world = "weir:operator/changelog-operator@0.3.0"`
    under `[tool.weir]`."""

    state = {}

    def each_row(rows, f):
        op = state["op"]
        ctx = Context()
        for row in range(rows):
            ctx.row = row
            try:
                f(op, ctx, row)
            except Exception as e:
                raise Err(types.OperatorError(row, _message(e)))
        return _reply(*ctx._finish())

    class Handler(exports.Handler):
        def open(self, config):
            try:
                op = operator_class()
                op.open(OpenContext(config))
            except Exception as e:
                raise Err(_message(e))
            state["op"] = op

        def process(self, input):
            kinds = ()
            if changelog is not None:
                input, kinds = input.rows, [RowKind(k.value) for k in input.kinds]
            keys, kends, vals, vends, ts = input.keys, input.key_ends, input.values, input.value_ends, input.timestamps

            def call(op, ctx, row):
                ks = kends[row - 1] if row else 0
                vs = vends[row - 1] if row else 0
                ctx.timestamp = ts[row]
                kind = kinds[row] if kinds else RowKind.INSERT
                op.process(ctx, Record(keys[ks:kends[row]], vals[vs:vends[row]], ts[row], kind))

            return each_row(len(kends), call)

        def on_timer(self, timers):
            keys, kends, times, domains = timers.keys, timers.key_ends, timers.times, timers.domains

            def call(op, ctx, row):
                ks = kends[row - 1] if row else 0
                ctx.timestamp = times[row]
                op.on_timer(ctx, Timer(keys[ks:kends[row]], times[row], domains[row]))

            return each_row(len(kends), call)

    Handler.__name__ = Handler.__qualname__ = "Handler"
    return Handler
