"""The bindings componentize-py generates for the operator worlds (not API):
`weir:operator@0.1.0`, or `weir:operator@0.3.0` (row kinds), whichever the
plugin was built for (`world` under `[tool.weir]` in its pyproject.toml)."""

from wit_world import exports as exports  # noqa: F401
from wit_world.imports import runtime, state, timers, types  # noqa: F401
from wit_world.imports.runtime import Level  # noqa: F401
from wit_world.imports.types import TimeDomain  # noqa: F401

try:
    # Only in a component of weir:operator@0.3.0.
    from wit_world.imports import changelog  # noqa: F401
except ImportError:
    changelog = None
