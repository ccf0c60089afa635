"""The `Operator` base class and the glue to the exported `handler` interface."""

import traceback

from componentize_py_types import Err

from .context import Context, OpenContext
from .record import Record, Timer
from .wit import exports, types


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


def export(operator_class):
    """The `Handler` class componentize-py exports, running `operator_class`.
    Use it in the plugin's app.py: `Handler = export(MyOperator)`."""

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
        return ctx._finish()

    class Handler(exports.Handler):
        def open(self, config):
            try:
                op = operator_class()
                op.open(OpenContext(config))
            except Exception as e:
                raise Err(_message(e))
            state["op"] = op

        def process(self, input):
            keys, kends, vals, vends, ts = input.keys, input.key_ends, input.values, input.value_ends, input.timestamps

            def call(op, ctx, row):
                ks = kends[row - 1] if row else 0
                vs = vends[row - 1] if row else 0
                ctx.timestamp = ts[row]
                op.process(ctx, Record(keys[ks:kends[row]], vals[vs:vends[row]], ts[row]))

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
