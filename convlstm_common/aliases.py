"""Old module paths kept as aliases of the modules that now hold their names.

An alias module calls `alias` and keeps its `__getattr__` and `__dir__`: every name it used to
define is still found there, taken from its new home with a `DeprecationWarning` that names the
new path, so `from convlstm_jax.nowcast import verify` keeps working and says where `verify` lives.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any


def alias(old: str, homes: Sequence[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module `__getattr__` and `__dir__` that find `old`'s names in `homes`, in that order.

    Args:
      old: the alias module's name (its `__name__`).
      homes: the modules that now hold the names, looked up in order; a name that none of them
        defines raises `AttributeError`, as from any module.

    Returns:
      `(__getattr__, __dir__)` for the alias module.
    """

    def find(name: str) -> tuple[str, Any] | None:
        for home in homes:
            module = importlib.import_module(home)
            if name in getattr(module, "__all__", ()) or (not name.startswith("_") and hasattr(module, name)):
                return home, getattr(module, name)
        return None

    def __getattr__(name: str) -> Any:
        found = None if name.startswith("__") else find(name)
        if found is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        home, value = found
        warnings.warn(
            f"{old}.{name} has moved to {home}.{name}; {old} will be removed in a future release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    def __dir__() -> list[str]:
        names: set[str] = set()
        for home in homes:
            module = importlib.import_module(home)
            names.update(getattr(module, "__all__", None) or (n for n in vars(module) if not n.startswith("_")))
        return sorted(names)

    return __getattr__, __dir__
