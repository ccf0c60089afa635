"""Write Weir stream operators in Python.

An operator subclasses `Operator`; the plugin's `app.py` exports it with
`Handler = export(MyOperator)` and is built with componentize-py
(`weir build DIR`). The host hands the component records in batches; the SDK
calls `process(ctx, record)` once per record::

    from weir_sdk import Operator, export

    class Count(Operator):
        def open(self, ctx):
            self.seen = ctx.value_state("seen")

        def process(self, ctx, record):
            n = (self.seen.get(ctx) or 0) + 1
            self.seen.set(ctx, n)
            ctx.emit(record.key, str(n))

    Handler = export(Count)

An exception raised by `open`, `process` or `on_timer` becomes the operator's
error, reported by the host with the plugin's name and the input record.

Scalar SQL functions are written with `weir_sdk.functions`.
"""

try:
    # The operator worlds' bindings; a component of SQL functions
    # (weir:function/scalar-function@0.1.0) has none, and uses
    # weir_sdk.functions only.
    import wit_world.imports.runtime  # noqa: F401

    _OPERATOR = True
except ImportError:
    _OPERATOR = False

if _OPERATOR:
    from .context import NO_TIMESTAMP, Context, Counter, OpenContext, SideOutput
    from .export import Operator, export
    from .record import Record, RowKind, Timer
    from .state import ListState, MapState, Reducer, ReducingState, ValueState
    from .wit import Level, TimeDomain

__all__ = [
    "NO_TIMESTAMP", "Context", "Counter", "OpenContext", "SideOutput", "Operator", "export",
    "Record", "RowKind", "Timer", "ListState", "MapState", "Reducer", "ReducingState", "ValueState",
    "Level", "TimeDomain", "WeirError",
]


class WeirError(Exception):
    """An error with a message for the host; any other exception works too."""
