// What an operator sees: OpenContext while it opens, Context per record.
import { runtime, timers } from "./wit.js";
import { Column, fromS64, s64, toBytes } from "./bytes.js";
import { ListState, MapState, ReducingState, ValueColumn, ValueState } from "./state.js";
import { NO_TIMESTAMP, RowKind, shortKind } from "./record.js";

/** A declared side output. */
export class SideOutput {
  constructor(number, name) {
    this.number = number;
    this.name = name;
  }
}

/** A declared counter metric. */
export class Counter {
  constructor(id) {
    this.id = id;
  }
  add(delta = 1) {
    runtime.counterAdd(this.id, BigInt(delta));
  }
}

function ok(f, what) {
  try {
    return f();
  } catch (e) {
    throw new Error(`${what}: ${e && e.payload !== undefined ? e.payload : e}`);
  }
}

/** Configuration and declarations of states, side outputs and counters; only valid in open. */
export class OpenContext {
  constructor(config) {
    this.configMap = new Map(config);
  }
  /** A value of the operator's `config` map in the pipeline spec. */
  config(key, fallback) {
    return this.configMap.has(key) ? this.configMap.get(key) : fallback;
  }
  taskInfo() {
    return runtime.getTaskInfo();
  }
  valueState(name, ttlMs) {
    return new ValueState(name, ttlMs);
  }
  mapState(name, ttlMs) {
    return new MapState(name, ttlMs);
  }
  listState(name, ttlMs) {
    return new ListState(name, ttlMs);
  }
  reducingState(name, reducer, ttlMs) {
    return new ReducingState(name, reducer, ttlMs);
  }
  sideOutput(name) {
    return new SideOutput(ok(() => runtime.declareOutput(name), `cannot declare output '${name}'`), name);
  }
  counter(name) {
    return new Counter(ok(() => runtime.declareCounter(name), `cannot declare counter '${name}'`));
  }
  log(level, message) {
    runtime.log(level, message);
  }
}

/** Emitting, keyed state scope and timers while one record or timer is handled. */
export class Context {
  constructor() {
    this.row = 0;
    this.timestamp = NO_TIMESTAMP;
    this.keys = new Column();
    this.values = new Column();
    this.times = [];
    this.outputs = [];
    this.causes = [];
    this.side = false;
    this.columns = new Map();
    // One RowKind per emitted row once a row other than an insert is emitted.
    this.kinds = [];
  }
  /** Emit a record (string or Uint8Array key and value) to the main output. */
  emit(key, value, timestamp) {
    this.push(0, key, value, timestamp);
  }
  /** Emit a record whose value is `value` as JSON. */
  emitJson(key, value, timestamp) {
    this.push(0, key, JSON.stringify(value), timestamp);
  }
  /** Emit a row of a changelog (a RowKind) to the main output; only plugins
   * built for weir:operator@0.3.0 (exportChangelogOperator) may emit kinds
   * other than INSERT. */
  emitKind(kind, key, value, timestamp) {
    shortKind(kind);
    this.push(0, key, value, timestamp);
    this.setKind(kind);
  }
  /** emitKind with `value` as JSON. */
  emitJsonKind(kind, key, value, timestamp) {
    shortKind(kind);
    this.push(0, key, JSON.stringify(value), timestamp);
    this.setKind(kind);
  }
  setKind(kind) {
    if (this.kinds.length === 0) {
      if (kind === RowKind.INSERT) return;
      this.kinds = new Array(this.causes.length).fill(RowKind.INSERT);
    }
    this.kinds[this.kinds.length - 1] = kind;
  }
  /** Emit a record to a SideOutput. */
  emitTo(output, key, value, timestamp) {
    this.push(output.number, key, value, timestamp);
    this.side = true;
  }
  push(output, key, value, timestamp) {
    this.keys.push(toBytes(key));
    this.values.push(toBytes(value));
    this.times.push(timestamp === undefined ? this.timestamp : BigInt(timestamp));
    this.outputs.push(output);
    this.causes.push(this.row);
    if (this.kinds.length > 0) this.kinds.push(RowKind.INSERT);
  }
  registerEventTimeTimer(time) {
    timers.registerEventTimeTimer(this.row, s64(time));
  }
  deleteEventTimeTimer(time) {
    timers.deleteEventTimeTimer(this.row, s64(time));
  }
  registerProcessingTimeTimer(time) {
    timers.registerProcessingTimeTimer(this.row, s64(time));
  }
  deleteProcessingTimeTimer(time) {
    timers.deleteProcessingTimeTimer(this.row, s64(time));
  }
  currentWatermark() {
    return fromS64(timers.currentWatermark());
  }
  currentProcessingTime() {
    return fromS64(timers.currentProcessingTime());
  }
  log(level, message) {
    runtime.log(level, message);
  }
  column(id) {
    let c = this.columns.get(id);
    if (c === undefined) this.columns.set(id, (c = new ValueColumn(id)));
    return c;
  }
  finish() {
    for (const [id, c] of this.columns) c.flush(id);
    const records = {
      keys: this.keys.bytes(),
      keyEnds: this.keys.endsArray(),
      values: this.values.bytes(),
      valueEnds: this.values.endsArray(),
      timestamps: BigInt64Array.from(this.times),
      headers: [],
    };
    const outputs = this.side ? Uint32Array.from(this.outputs) : new Uint32Array(0);
    return { records, outputs, causes: Uint32Array.from(this.causes) };
  }
  /** The emitted rows' kinds ([]: all inserts). */
  emittedKinds() {
    return this.kinds;
  }
}
