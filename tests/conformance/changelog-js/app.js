// The changelog conformance guest in JavaScript: the operator of
// tests/guests/changelog-count (see its src/lib.rs for the behaviour), on
// sdk/js, built for weir:operator@0.3.0 (package.json). The output must be
// byte-identical to the Rust one's (runtime/cli/tests/e2e/conformance.rs).
import { Operator, RowKind, exportChangelogOperator } from "../../../sdk/js/src/index.js";

const row = (g, n, s) => `{"g":${JSON.stringify(g)},"n":${n},"sum":${s}}`;
const retracts = (k) => k === RowKind.UPDATE_BEFORE || k === RowKind.DELETE;

class Count extends Operator {
  open(ctx) {
    this.agg = ctx.valueState("agg");
    this.retractions = ctx.counter("retractions");
  }

  process(ctx, record) {
    const { g, amount } = record.json();
    let sign = 1;
    if (retracts(record.kind)) {
      this.retractions.add(1);
      sign = -1;
    }
    const [n, s] = this.agg.get(ctx) ?? [0, 0];
    const [m, t] = [n + sign, s + sign * amount];
    if (m < 0) throw new Error(`group ${g}: more rows taken out than went in`);
    if (n === 0) ctx.emitKind(RowKind.INSERT, record.key, row(g, m, t));
    else if (m === 0) ctx.emitKind(RowKind.DELETE, record.key, row(g, n, s));
    else {
      ctx.emitKind(RowKind.UPDATE_BEFORE, record.key, row(g, n, s));
      ctx.emitKind(RowKind.UPDATE_AFTER, record.key, row(g, m, t));
    }
    if (m === 0) this.agg.clear(ctx);
    else this.agg.set(ctx, [m, t]);
  }
}

export const handler = exportChangelogOperator(Count);
