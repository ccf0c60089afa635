"""Scalar SQL functions in Python (`weir:function/scalar-function@0.1.0`).

Each function is a plain Python function of one row's values, declared with
its SQL types; `export` makes the component's `Functions` export of them,
called by the host once per batch (the SDK loops over the rows)::

    from weir_sdk.functions import BIGINT, VARCHAR, export, function

    @function(args=[VARCHAR], returns=VARCHAR)
    def shout(s):
        return None if s is None else s.upper()

    Functions = export(shout)

Build the plugin with `world = "weir:function/scalar-function@0.1.0"` under
`[tool.weir]` in its pyproject.toml (`weir build DIR`), and use it in SQL
with `CREATE FUNCTION shout AS 'plugin.wasm'`. Values: None for NULL, bool,
int (BIGINT, and TIMESTAMP as milliseconds since the epoch), float, str. An
exception fails the job, naming the function and the row.
"""

import traceback

from componentize_py_types import Err
from wit_world.exports import Functions as _Functions
from wit_world.exports.functions import (
    Column_Bigint,
    Column_Boolean,
    Column_Double,
    Column_Timestamp,
    Column_Varchar,
    Signature,
    SqlType,
)

BOOLEAN = SqlType.BOOLEAN
BIGINT = SqlType.BIGINT
DOUBLE = SqlType.DOUBLE
VARCHAR = SqlType.VARCHAR
TIMESTAMP = SqlType.TIMESTAMP

_COLUMNS = {
    SqlType.BOOLEAN: (Column_Boolean, bool),
    SqlType.BIGINT: (Column_Bigint, int),
    SqlType.DOUBLE: (Column_Double, float),
    SqlType.VARCHAR: (Column_Varchar, str),
    SqlType.TIMESTAMP: (Column_Timestamp, int),
}


def function(args, returns, name=None):
    """Declare a Python function as a SQL function taking `args` (SQL types)
    and returning `returns`, named `name` (default: its own name)."""

    def declare(f):
        f._weir_signature = Signature(name or f.__name__, list(args), returns)
        return f

    return declare


def _message(e):
    msg = str(e) or type(e).__name__
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"{type(e).__name__}: {msg}{where}"


def export(*functions):
    """The `Functions` class componentize-py exports, serving `functions`
    (each declared with `@function`). In the plugin's app.py:
    `Functions = export(f, g)`."""

    table = {}
    for f in functions:
        sig = getattr(f, "_weir_signature", None)
        if sig is None:
            raise TypeError(f"{f.__name__} is not declared with @function(args=[...], returns=...)")
        table[sig.name.lower()] = (f, sig)

    class Functions(_Functions):
        def describe(self):
            return [sig for _, sig in table.values()]

        def call(self, name, args, rows):
            entry = table.get(name.lower())
            if entry is None:
                raise Err(f"no function {name} (this component has: {', '.join(table)})")
            f, sig = entry
            make, kind = _COLUMNS[sig.returns]
            columns = [a.value for a in args]
            out = []
            for row in range(rows):
                try:
                    v = f(*[c[row] for c in columns])
                except Exception as e:
                    raise Err(f"{name} failed on row {row} of the batch: {_message(e)}")
                if v is not None and not isinstance(v, kind) and not (kind is float and isinstance(v, int)):
                    raise Err(f"{name} returned {type(v).__name__} {v!r} on row {row} of the batch; it declares {sig.returns.name}")
                out.append(float(v) if kind is float and v is not None else v)
            return make(out)

    return Functions
