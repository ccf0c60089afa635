// Write Weir stream operators in JavaScript (componentize-js).
//
//   import { Operator, exportOperator } from "./weir-sdk/index.js";
//   class Count extends Operator {
//     open(ctx) { this.seen = ctx.valueState("seen"); }
//     process(ctx, record) {
//       const n = (this.seen.get(ctx) ?? 0) + 1;
//       this.seen.set(ctx, n);
//       ctx.emit(record.key, String(n));
//     }
//   }
//   export const handler = exportOperator(Count);
//
// A changelog operator (weir:operator@0.3.0: records with `record.kind`, rows
// emitted with `ctx.emitKind(RowKind.DELETE, key, value)`) is exported with
// `exportChangelogOperator(Op)` and built with `"weir": {"world":
// "weir:operator/changelog-operator@0.3.0"}` in package.json.
//
// An exception thrown by open, process or onTimer becomes the operator's
// error, reported by the host with the plugin's name and the input record.
export { Operator, exportChangelogOperator, exportOperator } from "./export.js";
export { Context, Counter, OpenContext, SideOutput } from "./context.js";
export { NO_TIMESTAMP, Record, RowKind, Timer } from "./record.js";
export { ListState, MapState, Reducer, ReducingState, ValueState } from "./state.js";
