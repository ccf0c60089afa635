"""Scalar SQL functions in Python, the same as the Rust plugins/sql-functions:

* `shout(s STRING) -> STRING`: `s` in capitals;
* `price_band(cents BIGINT) -> STRING`: `low` under 1 000, `mid` under 5 000,
  else `high`;
* `to_dollars(cents BIGINT) -> DOUBLE`: `cents / 100`;
* `on_the_hour(ts TIMESTAMP) -> TIMESTAMP`: `ts` rounded down to the hour.

NULL in, NULL out.
"""

from weir_sdk.functions import BIGINT, DOUBLE, TIMESTAMP, VARCHAR, export, function


@function(args=[VARCHAR], returns=VARCHAR)
def shout(s):
    return None if s is None else s.upper()


@function(args=[BIGINT], returns=VARCHAR)
def price_band(cents):
    if cents is None:
        return None
    return "low" if cents < 1000 else "mid" if cents < 5000 else "high"


@function(args=[BIGINT], returns=DOUBLE)
def to_dollars(cents):
    return None if cents is None else cents / 100


@function(args=[TIMESTAMP], returns=TIMESTAMP)
def on_the_hour(ts):
    return None if ts is None else ts - ts % 3_600_000


Functions = export(shout, price_band, to_dollars, on_the_hour)
