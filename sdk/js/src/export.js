// The Operator base class and the glue to the exported `handler` interface.
import { Context, OpenContext } from "./context.js";
import { Record, Timer } from "./record.js";

/** A stream operator; one instance runs per parallel task. Override
 * open(ctx), process(ctx, record) and optionally onTimer(ctx, timer); throw
 * to fail on the current record. */
export class Operator {
  open(_ctx) {}
  process(_ctx, _record) {
    throw new Error("an Operator must implement process(ctx, record)");
  }
  onTimer(_ctx, _timer) {}
}

const message = (e) => (e instanceof Error ? e.message || e.name : String(e));

/** The `handler` export running `OperatorClass`; in the plugin's source:
 * `export const handler = exportOperator(MyOperator);` */
export function exportOperator(OperatorClass) {
  let op;
  function eachRow(rows, f) {
    const ctx = new Context();
    for (let row = 0; row < rows; row++) {
      ctx.row = row;
      try {
        f(ctx, row);
      } catch (e) {
        throw { payload: { row, message: message(e) } };
      }
    }
    return ctx.finish();
  }
  return {
    open(config) {
      try {
        op = new OperatorClass();
        op.open(new OpenContext(config));
      } catch (e) {
        throw { payload: message(e) };
      }
    },
    process(input) {
      const { keys, keyEnds, values, valueEnds, timestamps } = input;
      return eachRow(keyEnds.length, (ctx, row) => {
        const ks = row ? keyEnds[row - 1] : 0;
        const vs = row ? valueEnds[row - 1] : 0;
        ctx.timestamp = timestamps[row];
        op.process(ctx, new Record(keys.subarray(ks, keyEnds[row]), values.subarray(vs, valueEnds[row]), timestamps[row]));
      });
    },
    onTimer(fired) {
      const { keys, keyEnds, times, domains } = fired;
      return eachRow(keyEnds.length, (ctx, row) => {
        const ks = row ? keyEnds[row - 1] : 0;
        ctx.timestamp = times[row];
        op.onTimer(ctx, new Timer(keys.subarray(ks, keyEnds[row]), times[row], domains[row]));
      });
    },
  };
}
