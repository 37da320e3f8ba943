"""``Remade``: how the compiled folds' dataclasses are pickled and copied.

Compiled by mypyc (``ttfb.native``), a dataclass is a native class, which
pickle and ``copy.deepcopy`` make again by calling its ``__init__`` with no
arguments, then setting each field: a frozen one refuses the fields, one
whose fields have no defaults refuses the call. A policy sent to the
calibration process, or a state copied deep, would fail there and not as
Python. Pickled as its class and the arguments of its ``__init__`` (its
fields), it is made again as it was first made, compiled or not.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class Remade:
    """Base of the folds' dataclasses that are pickled or copied (no fields
    of its own; a field its ``__init__`` does not take is derived again)."""

    def __reduce__(self) -> tuple[Any, ...]:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        return type(self), tuple(getattr(self, f.name) for f in fields if f.init)
