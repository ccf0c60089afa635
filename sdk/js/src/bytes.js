// A growable byte buffer with end offsets: the columnar lists of the contract.

const encoder = new TextEncoder();

/** Strings become UTF-8; Uint8Arrays pass as they are. */
export function toBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return encoder.encode(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return Uint8Array.from(v);
  throw new TypeError(`expected a string or Uint8Array, got ${Object.prototype.toString.call(v)}`);
}

export class Column {
  constructor() {
    this.buf = new Uint8Array(1024);
    this.len = 0;
    this.ends = [];
  }
  push(bytes) {
    const need = this.len + bytes.length;
    if (need > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < need) cap *= 2;
      const grown = new Uint8Array(cap);
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(bytes, this.len);
    this.len = need;
    this.ends.push(need);
  }
  bytes() {
    return this.buf.slice(0, this.len);
  }
  endsArray() {
    return Uint32Array.from(this.ends);
  }
}

/** An s64 argument of an import. componentize-js 0.23.0 lowers only
 * 0 <= v < 2^63 (a negative one traps the component), so those are refused
 * with an error here. */
export function s64(v) {
  const b = BigInt(v);
  if (b < 0n) throw new RangeError(`${b} is negative: componentize-js 0.23.0 cannot pass negative 64-bit integers to the host`);
  return b;
}

/** An s64 result of an import, which componentize-js 0.23.0 lifts as unsigned. */
export const fromS64 = (v) => BigInt.asIntN(64, BigInt(v));
