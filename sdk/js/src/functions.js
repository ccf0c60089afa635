// Scalar SQL functions in JavaScript (weir:function/scalar-function@0.1.0).
//
// Each function is a plain JavaScript function of one row's values, declared
// with its SQL types; `exportFunctions` makes the component's `functions`
// export of them, called by the host once per batch (the SDK loops over the
// rows):
//
//   import { SqlType, exportFunctions, sqlFunction } from "./weir-sdk/functions.js";
//   const shout = sqlFunction("shout", [SqlType.VARCHAR], SqlType.VARCHAR, (s) => (s == null ? null : s.toUpperCase()));
//   export const functions = exportFunctions(shout);
//
// Build it with `"weir": {"world": "weir:function/scalar-function@0.1.0"}` in
// package.json (`weir build DIR`). Values: null for NULL, booleans, BigInt
// (BIGINT, and TIMESTAMP as milliseconds since the epoch; a Number is taken
// too when returned), numbers (DOUBLE) and strings. An exception fails the
// job, naming the function and the row. This module imports nothing of the
// operator worlds, so a function component imports only WASI.

/** The SQL types a function takes and returns. */
export const SqlType = Object.freeze({
  BOOLEAN: "boolean",
  BIGINT: "bigint",
  DOUBLE: "double",
  VARCHAR: "varchar",
  TIMESTAMP: "timestamp",
});

const message = (e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

/** Declare `f`, of one row's values, as SQL function `name`. */
export function sqlFunction(name, args, returns, f) {
  return { signature: { name, args: [...args], returns }, f };
}

/** A returned value as the column of type `t` carries it (undefined: NULL). */
function lower(t, v, name, row) {
  if (v === null || v === undefined) return undefined;
  const wrong = () => {
    throw { payload: `${name} returned ${typeof v} ${String(v)} on row ${row} of the batch; it declares ${t}` };
  };
  switch (t) {
    case SqlType.BOOLEAN:
      return typeof v === "boolean" ? v : wrong();
    case SqlType.BIGINT:
    case SqlType.TIMESTAMP:
      if (typeof v === "bigint") return BigInt.asIntN(64, v);
      return typeof v === "number" && Number.isInteger(v) ? BigInt(v) : wrong();
    case SqlType.DOUBLE:
      return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : wrong();
    default:
      return typeof v === "string" ? v : wrong();
  }
}

/** The `functions` export serving `declared` (each made by sqlFunction). */
export function exportFunctions(...declared) {
  const table = new Map(declared.map((d) => [d.signature.name.toLowerCase(), d]));
  return {
    describe() {
      return declared.map((d) => d.signature);
    },
    call(name, args, rows) {
      const d = table.get(name.toLowerCase());
      if (!d) throw { payload: `no function ${name} (this component has: ${[...table.keys()].join(", ")})` };
      const columns = args.map((a) => a.val);
      const out = new Array(rows);
      for (let row = 0; row < rows; row++) {
        let v;
        try {
          v = d.f(...columns.map((c) => c[row] ?? null));
        } catch (e) {
          throw { payload: `${name} failed on row ${row} of the batch: ${message(e)}` };
        }
        out[row] = lower(d.signature.returns, v, name, row);
      }
      return { tag: d.signature.returns, val: out };
    },
  };
}
