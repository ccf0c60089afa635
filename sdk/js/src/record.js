// Input records and fired timers: views of one row of a columnar batch.

/** Event time of a record that has none. */
export const NO_TIMESTAMP = -(2n ** 63n);

const decoder = new TextDecoder();

/** One input record: `key` and `value` are Uint8Arrays. */
export class Record {
  constructor(key, value, timestamp) {
    this.key = key;
    this.value = value;
    this.rawTimestamp = timestamp;
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
