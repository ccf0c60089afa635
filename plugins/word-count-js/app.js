// Word count, in two stages of one plugin (`config.stage`), exactly as the
// Rust plugins/word-count:
//
// * `tokenize`: splits each record's value into words and emits one record per
//   word, keyed by the word. A word is a maximal run of ASCII letters and
//   digits, lowercased; everything else separates words.
// * `count` (the default): counts records per key in a value state and emits,
//   for every input, {"word":"<key>","count":N} with N the running count.
import { Operator, exportOperator } from "../../sdk/js/src/index.js";

const EMPTY = new Uint8Array(0);
// Fatal, as the Rust plugin fails on a key that is not UTF-8.
const decoder = new TextDecoder("utf-8", { fatal: true });

const isWordByte = (b) => (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122);

// JSON string contents, escaped as the Rust plugin does.
function jsonEscape(s) {
  return s.replace(/["\\\u0000-\u001f]/g, (c) =>
    c === '"' || c === "\\" ? "\\" + c : "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

class WordCount extends Operator {
  open(ctx) {
    const stage = ctx.config("stage", "count");
    if (stage === "tokenize") {
      this.process = this.tokenize;
    } else if (stage === "count") {
      this.counts = ctx.valueState("count");
      this.process = this.count;
    } else {
      throw new Error(`config 'stage' must be 'tokenize' or 'count', not ${JSON.stringify(stage)}`);
    }
  }

  tokenize(ctx, record) {
    const v = record.value;
    let start = -1;
    for (let i = 0; i <= v.length; i++) {
      const word = i < v.length && isWordByte(v[i]);
      if (word && start < 0) start = i;
      else if (!word && start >= 0) {
        const w = v.slice(start, i);
        for (let j = 0; j < w.length; j++) if (w[j] >= 65 && w[j] <= 90) w[j] += 32;
        ctx.emit(w, EMPTY);
        start = -1;
      }
    }
  }

  count(ctx, record) {
    const n = (this.counts.get(ctx) ?? 0) + 1;
    this.counts.set(ctx, n);
    const word = jsonEscape(decoder.decode(record.key));
    ctx.emit(record.key, `{"word":"${word}","count":${n}}`);
  }
}

export const handler = exportOperator(WordCount);
