"""Where skmaf 0.1.0 defined ``StreamState``: its pickles name this module."""

from ._training.streaming import StreamState

__all__ = ["StreamState"]
