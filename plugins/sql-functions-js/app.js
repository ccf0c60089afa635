// Scalar SQL functions in JavaScript, the same as the Rust plugins/sql-functions:
//
// * shout(s STRING) -> STRING: `s` in capitals;
// * price_band(cents BIGINT) -> STRING: `low` under 1 000, `mid` under 5 000,
//   else `high`;
// * to_dollars(cents BIGINT) -> DOUBLE: cents / 100;
// * on_the_hour(ts TIMESTAMP) -> TIMESTAMP: `ts` rounded down to the hour.
//
// NULL in, NULL out.
import { SqlType, exportFunctions, sqlFunction } from "../../sdk/js/src/functions.js";

const { BIGINT, DOUBLE, TIMESTAMP, VARCHAR } = SqlType;
const HOUR = 3_600_000n;

export const functions = exportFunctions(
  sqlFunction("shout", [VARCHAR], VARCHAR, (s) => (s == null ? null : s.toUpperCase())),
  sqlFunction("price_band", [BIGINT], VARCHAR, (c) => (c == null ? null : c < 1000n ? "low" : c < 5000n ? "mid" : "high")),
  sqlFunction("to_dollars", [BIGINT], DOUBLE, (c) => (c == null ? null : Number(c) / 100)),
  sqlFunction("on_the_hour", [TIMESTAMP], TIMESTAMP, (t) => (t == null ? null : t - (((t % HOUR) + HOUR) % HOUR))),
);
