// Keyed state handles. Values are stored as JSON (UTF-8); reducing state holds
// one 64-bit integer (BigInt) per key, combined on the host.
import { state as wit } from "./wit.js";
import { Column, fromS64, s64 } from "./bytes.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const enc = (v) => encoder.encode(JSON.stringify(v));
const dec = (b) => JSON.parse(decoder.decode(b));

/** How a reducing state combines values. */
export const Reducer = Object.freeze({ SUM: "sum", MIN: "min", MAX: "max" });

function declare(name, kind, ttlMs) {
  try {
    return wit.declare({ name, kind, ttlMs: ttlMs == null ? undefined : BigInt(ttlMs) });
  } catch (e) {
    throw new Error(`cannot declare state '${name}': ${e && e.payload !== undefined ? e.payload : e}`);
  }
}

/** A value state's values for every row of the current call, fetched in one
 * host call on first use; writes go back in one call when the call ends. */
export class ValueColumn {
  constructor(id) {
    const c = wit.valueGetColumn(id);
    this.firstRow = c.firstRow;
    this.bytes = c.bytes;
    this.ends = c.ends;
    this.present = c.present;
    this.written = new Map();
  }
  get(row) {
    const first = this.firstRow[row];
    if (this.written.has(first)) return this.written.get(first);
    if (!this.present[first]) return undefined;
    return this.bytes.subarray(first ? this.ends[first - 1] : 0, this.ends[first]);
  }
  put(row, value) {
    this.written.set(this.firstRow[row], value);
  }
  flush(id) {
    if (this.written.size === 0) return;
    const rows = [], present = [], out = new Column();
    for (const [row, v] of this.written) {
      rows.push(row);
      present.push(v !== undefined);
      out.push(v === undefined ? new Uint8Array(0) : v);
    }
    wit.valueSetRows(id, Uint32Array.from(rows), out.bytes(), out.endsArray(), present);
    this.written.clear();
  }
}

/** One JSON value per key: get(ctx) (undefined if unset), set(ctx, v), clear(ctx). */
export class ValueState {
  constructor(name, ttlMs) {
    this.name = name;
    this.id = declare(name, { tag: "value" }, ttlMs);
  }
  get(ctx) {
    const b = ctx.column(this.id).get(ctx.row);
    return b === undefined ? undefined : dec(b);
  }
  set(ctx, value) {
    ctx.column(this.id).put(ctx.row, enc(value));
  }
  clear(ctx) {
    ctx.column(this.id).put(ctx.row, undefined);
  }
}

/** A map per key from JSON values to JSON values. */
export class MapState {
  constructor(name, ttlMs) {
    this.name = name;
    this.id = declare(name, { tag: "map" }, ttlMs);
  }
  get(ctx, key) {
    const b = wit.mapGet(this.id, ctx.row, enc(key));
    return b == null ? undefined : dec(b);
  }
  contains(ctx, key) {
    return wit.mapGet(this.id, ctx.row, enc(key)) != null;
  }
  put(ctx, key, value) {
    wit.mapPut(this.id, ctx.row, enc(key), enc(value));
  }
  /** Returns whether the entry existed. */
  remove(ctx, key) {
    return wit.mapRemove(this.id, ctx.row, enc(key));
  }
  /** All [key, value] pairs, in no particular order. */
  entries(ctx) {
    return wit.mapEntries(this.id, ctx.row).map(([k, v]) => [dec(k), dec(v)]);
  }
  clear(ctx) {
    wit.clear(this.id, ctx.row);
  }
}

/** A list of JSON values per key. */
export class ListState {
  constructor(name, ttlMs) {
    this.name = name;
    this.id = declare(name, { tag: "list" }, ttlMs);
  }
  add(ctx, value) {
    wit.listAdd(this.id, ctx.row, enc(value));
  }
  get(ctx) {
    return wit.listGet(this.id, ctx.row).map(dec);
  }
  update(ctx, values) {
    wit.listUpdate(this.id, ctx.row, values.map(enc));
  }
  clear(ctx) {
    wit.clear(this.id, ctx.row);
  }
}

/** One 64-bit integer per key; add(ctx, n) combines on the host and returns the result (BigInt).
 * n must not be negative (see s64 in bytes.js). */
export class ReducingState {
  constructor(name, reducer, ttlMs) {
    this.name = name;
    this.id = declare(name, { tag: "reducing", val: reducer }, ttlMs);
  }
  add(ctx, value) {
    return fromS64(wit.reducingAdd(this.id, ctx.row, s64(value)));
  }
  get(ctx) {
    const v = wit.reducingGet(this.id, ctx.row);
    return v == null ? undefined : fromS64(v);
  }
  clear(ctx) {
    wit.clear(this.id, ctx.row);
  }
}
