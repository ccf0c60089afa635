"""Word count, in two stages of one plugin (`config.stage`), exactly as the
Rust `plugins/word-count`:

* `tokenize`: splits each record's value into words and emits one record per
  word, keyed by the word. A word is a maximal run of ASCII letters and
  digits, lowercased; everything else separates words.
* `count` (the default): counts records per key in a value state and emits,
  for every input, `{"word":"<key>","count":N}` with N the running count.
"""

import re

from weir_sdk import Operator, export

WORD = re.compile(rb"[A-Za-z0-9]+")


def json_escape(s):
    """JSON string contents, escaped as the Rust plugin does."""
    if not any(c < " " or c in '"\\' for c in s):
        return s
    return "".join(
        "\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if c < " " else c for c in s
    )


class WordCount(Operator):
    def open(self, ctx):
        stage = ctx.config("stage", "count")
        if stage == "tokenize":
            self.process = self.tokenize
        elif stage == "count":
            self.counts = ctx.value_state("count")
            self.process = self.count
        else:
            raise ValueError(f"config 'stage' must be 'tokenize' or 'count', not {stage!r}")

    def tokenize(self, ctx, record):
        for word in WORD.findall(record.value):
            ctx.emit(word.lower(), b"")

    def count(self, ctx, record):
        n = (self.counts.get(ctx) or 0) + 1
        self.counts.set(ctx, n)
        word = json_escape(record.key.decode())
        ctx.emit(record.key, f'{{"word":"{word}","count":{n}}}')


Handler = export(WordCount)
