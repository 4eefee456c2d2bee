"""The slicing helpers live with the layer handlers (``compress.layers.slicing``); this name is
kept for the attention handler, which imports them from here."""

from compress.layers.slicing import keep_index, set_param

__all__ = ["keep_index", "set_param"]
