"""The conformance guest in Python: the operator of tests/guests/conformance
(see its src/lib.rs for the behaviour), on weir_sdk. The output must be
byte-identical to the Rust one's (runtime/cli/tests/e2e/conformance.rs)."""

import json

from weir_sdk import Operator, Reducer, WeirError, export


def num(v):
    return "null" if v is None else str(v)


class Conformance(Operator):
    def open(self, ctx):
        self.records = ctx.counter("records")
        self.large = ctx.side_output("large")
        self.name = ctx.value_state("name")
        self.last = ctx.value_state("last")
        self.total = ctx.reducing_state("total", Reducer.SUM)
        self.max = ctx.reducing_state("max", Reducer.MAX)
        self.history = ctx.list_state("history")
        self.seen = ctx.map_state("seen")

    def process(self, ctx, record):
        self.records.add(1)
        v = record.json()
        k, n = v["k"], v["n"]
        if v.get("fail") is True:
            raise WeirError(f"conformance failure on key {k} (n={n})")
        self.name.set(ctx, k)
        prev = self.last.get(ctx)
        self.last.set(ctx, n)
        total = self.total.add(ctx, n)
        mx = self.max.add(ctx, n)
        self.history.add(ctx, n)
        hist = self.history.get(ctx)
        if len(hist) > 3:
            hist = hist[-3:]
            self.history.update(ctx, hist)
        seen = self.seen.get(ctx, str(n), 0) + 1
        self.seen.put(ctx, str(n), seen)
        if n == 0 and not self.seen.remove(ctx, "0"):
            raise WeirError("map entry 0 was not there")
        distinct = len(self.seen.entries(ctx))
        if n >= 8:
            ctx.emit_to(self.large, record.key, json.dumps({"k": k, "n": n}, separators=(",", ":")))
        ctx.register_event_time_timer(1000)
        hist = ",".join(str(h) for h in hist)
        ctx.emit(
            record.key,
            f'{{"k":"{k}","n":{n},"prev":{num(prev)},"total":{total},"max":{mx},'
            f'"hist":[{hist}],"seen":{seen},"distinct":{distinct}}}',
        )

    def on_timer(self, ctx, timer):
        k = self.name.get(ctx) or ""
        total = self.total.get(ctx)
        last = self.last.get(ctx)
        self.last.clear(ctx)
        ctx.emit(timer.key, f'{{"k":"{k}","timer":{timer.time},"total":{num(total)},"last":{num(last)}}}')


Handler = export(Conformance)
