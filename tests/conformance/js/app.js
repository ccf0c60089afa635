// The conformance guest in JavaScript: the operator of tests/guests/conformance
// (see its src/lib.rs for the behaviour), on sdk/js. The output must be
// byte-identical to the Rust one's (runtime/cli/tests/e2e/conformance.rs).
import { Operator, Reducer, exportOperator } from "../../../sdk/js/src/index.js";

const num = (v) => (v === undefined ? "null" : String(v));

class Conformance extends Operator {
  open(ctx) {
    this.records = ctx.counter("records");
    this.large = ctx.sideOutput("large");
    this.name = ctx.valueState("name");
    this.last = ctx.valueState("last");
    this.total = ctx.reducingState("total", Reducer.SUM);
    this.max = ctx.reducingState("max", Reducer.MAX);
    this.history = ctx.listState("history");
    this.seen = ctx.mapState("seen");
  }

  process(ctx, record) {
    this.records.add(1);
    const v = record.json();
    const { k, n } = v;
    if (v.fail === true) throw new Error(`conformance failure on key ${k} (n=${n})`);
    this.name.set(ctx, k);
    const prev = this.last.get(ctx);
    this.last.set(ctx, n);
    const total = this.total.add(ctx, n);
    const max = this.max.add(ctx, n);
    this.history.add(ctx, n);
    let hist = this.history.get(ctx);
    if (hist.length > 3) {
      hist = hist.slice(-3);
      this.history.update(ctx, hist);
    }
    const seen = (this.seen.get(ctx, String(n)) ?? 0) + 1;
    this.seen.put(ctx, String(n), seen);
    if (n === 0 && !this.seen.remove(ctx, "0")) throw new Error("map entry 0 was not there");
    const distinct = this.seen.entries(ctx).length;
    if (n >= 8) ctx.emitTo(this.large, record.key, JSON.stringify({ k, n }));
    ctx.registerEventTimeTimer(1000);
    ctx.emit(
      record.key,
      `{"k":"${k}","n":${n},"prev":${num(prev)},"total":${total},"max":${max},` +
        `"hist":[${hist.join(",")}],"seen":${seen},"distinct":${distinct}}`,
    );
  }

  onTimer(ctx, timer) {
    const k = this.name.get(ctx) ?? "";
    const total = this.total.get(ctx);
    const last = this.last.get(ctx);
    this.last.clear(ctx);
    ctx.emit(timer.key, `{"k":"${k}","timer":${timer.time},"total":${num(total)},"last":${num(last)}}`);
  }
}

export const handler = exportOperator(Conformance);
