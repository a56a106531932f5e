"""Training: the loop (:mod:`.loop`), one minibatch step (:mod:`.step`), Polyak
averaging (:mod:`.averaging`) and ``partial_fit``'s epochs over chunks (:mod:`.streaming`)."""

from .loop import train_flow
from .options import TrainingOptions, TrainingResult
from .streaming import StreamState, train_on_chunk

__all__ = ["StreamState", "TrainingOptions", "TrainingResult", "train_flow", "train_on_chunk"]
