"""Deprecated alias of `convlstm_common.tolerance`, where the tolerance policy now lives."""

from convlstm_common.aliases import alias

__getattr__, __dir__ = alias(__name__, ["convlstm_common.tolerance"])
