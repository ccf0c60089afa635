// Input records and fired timers: views of one row of a columnar batch.

/** Event time of a record that has none. */
export const NO_TIMESTAMP = -(2n ** 63n);

const decoder = new TextDecoder();

/** What a row does to the table a changelog describes (Flink's RowKind), as
 * weir:operator@0.3.0 spells it. Every record of an append-only stream, and of
 * a plugin built for weir:operator@0.1.0, is an INSERT. */
export const RowKind = Object.freeze({
  INSERT: "insert",
  UPDATE_BEFORE: "update-before",
  UPDATE_AFTER: "update-after",
  DELETE: "delete",
});

const SHORT = { insert: "+I", "update-before": "-U", "update-after": "+U", delete: "-D" };

/** Flink's short form of a RowKind: +I, -U, +U, -D. */
export function shortKind(kind) {
  const s = SHORT[kind];
  if (s === undefined) throw new Error(`'${kind}' is not a RowKind (insert, update-before, update-after, delete)`);
  return s;
}

/** One input record: `key` and `value` are Uint8Arrays; `kind` its RowKind. */
export class Record {
  constructor(key, value, timestamp, kind = RowKind.INSERT) {
    this.key = key;
    this.value = value;
    this.rawTimestamp = timestamp;
    this.kind = kind;
  }
  /** The event time (a BigInt), or undefined when the record has none. */
  get timestamp() {
    return this.rawTimestamp === NO_TIMESTAMP ? undefined : this.rawTimestamp;
  }
  keyString() {
    return decoder.decode(this.key);
  }
  valueString() {
    return decoder.decode(this.value);
  }
  /** The value parsed as JSON. */
  json() {
    return JSON.parse(this.valueString());
  }
}

/** A timer that fired: key (Uint8Array), time (BigInt), domain ('event-time' or 'processing-time'). */
export class Timer {
  constructor(key, time, domain) {
    this.key = key;
    this.time = time;
    this.domain = domain;
  }
  keyString() {
    return decoder.decode(this.key);
  }
}
