"""The bindings componentize-py generates for weir:operator@0.1.0 (not API)."""

from wit_world import exports as exports  # noqa: F401
from wit_world.imports import runtime, state, timers, types  # noqa: F401
from wit_world.imports.runtime import Level  # noqa: F401
from wit_world.imports.types import TimeDomain  # noqa: F401
