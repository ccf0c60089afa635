// The Operator base class and the glue to the exported `handler` interface.
import { Context, OpenContext } from "./context.js";
import { Record, RowKind, Timer, shortKind } from "./record.js";

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
 * `export const handler = exportOperator(MyOperator);`. For a plugin built
 * for weir:operator@0.1.0 (records without row kinds). */
export function exportOperator(OperatorClass) {
  return handler(OperatorClass, false);
}

/** The `handler` export of a changelog operator, running `OperatorClass`:
 * `export const handler = exportChangelogOperator(MyOperator);`, in a plugin
 * built for weir:operator@0.3.0 (package.json: `"weir": {"world":
 * "weir:operator/changelog-operator@0.3.0"}`), whose records carry their RowKind
 * (`record.kind`) and which may emit rows of any kind (`ctx.emitKind`). */
export function exportChangelogOperator(OperatorClass) {
  return handler(OperatorClass, true);
}

const WORLD_03 = 'world "weir:operator/changelog-operator@0.3.0" ("weir": {"world": ...} in package.json)';

function handler(OperatorClass, changelog) {
  let op;
  function reply(ctx) {
    const emitted = ctx.finish();
    const kinds = ctx.emittedKinds();
    if (changelog) return { emitted, kinds };
    const i = kinds.findIndex((k) => k !== RowKind.INSERT);
    if (i >= 0) {
      const message = `it emitted a ${shortKind(kinds[i])} row, but it is exported with exportOperator, whose world (weir:operator@0.1.0) carries no row kinds: export it with exportChangelogOperator and build it for the ${WORLD_03}`;
      throw { payload: { row: emitted.causes[i], message } };
    }
    return emitted;
  }
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
    return reply(ctx);
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
      if ((input.rows !== undefined) !== changelog) {
        const message = changelog
          ? "exportChangelogOperator needs a plugin built for the " + WORLD_03 + ", but this one is built for weir:operator@0.1.0"
          : "this plugin is built for weir:operator@0.3.0, which carries row kinds: export it with exportChangelogOperator";
        throw { payload: { row: undefined, message } };
      }
      const kinds = changelog ? input.kinds : [];
      const { keys, keyEnds, values, valueEnds, timestamps } = changelog ? input.rows : input;
      return eachRow(keyEnds.length, (ctx, row) => {
        const ks = row ? keyEnds[row - 1] : 0;
        const vs = row ? valueEnds[row - 1] : 0;
        ctx.timestamp = timestamps[row];
        const kind = kinds.length > 0 ? kinds[row] : RowKind.INSERT;
        op.process(ctx, new Record(keys.subarray(ks, keyEnds[row]), values.subarray(vs, valueEnds[row]), timestamps[row], kind));
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
