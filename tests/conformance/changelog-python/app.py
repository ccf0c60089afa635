"""The changelog conformance guest in Python: the operator of
tests/guests/changelog-count (see its src/lib.rs for the behaviour), on
weir_sdk, built for weir:operator@0.3.0 (pyproject.toml). The output must be
byte-identical to the Rust one's (runtime/cli/tests/e2e/conformance.rs)."""

import json

from weir_sdk import Operator, RowKind, WeirError, export


def row(g, n, s):
    return '{"g":%s,"n":%d,"sum":%d}' % (json.dumps(g), n, s)


class Count(Operator):
    def open(self, ctx):
        self.agg = ctx.value_state("agg")
        self.retractions = ctx.counter("retractions")

    def process(self, ctx, record):
        v = record.json()
        g, amount = v["g"], v["amount"]
        sign = 1
        if record.kind.retracts:
            self.retractions.add(1)
            sign = -1
        n, s = self.agg.get(ctx) or (0, 0)
        m, t = n + sign, s + sign * amount
        if m < 0:
            raise WeirError(f"group {g}: more rows taken out than went in")
        if n == 0:
            ctx.emit(record.key, row(g, m, t), kind=RowKind.INSERT)
        elif m == 0:
            ctx.emit(record.key, row(g, n, s), kind=RowKind.DELETE)
        else:
            ctx.emit(record.key, row(g, n, s), kind=RowKind.UPDATE_BEFORE)
            ctx.emit(record.key, row(g, m, t), kind=RowKind.UPDATE_AFTER)
        if m == 0:
            self.agg.clear(ctx)
        else:
            self.agg.set(ctx, [m, t])


Handler = export(Count)
