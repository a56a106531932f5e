"""Every warning and error class that skmaf defines, in one place."""

__all__ = ["DegenerateDataWarning", "DeviceWarning", "InverseNotAvailable"]


class DegenerateDataWarning(UserWarning):
    """Training data on which a continuous density is degenerate.

    Raised by ``fit`` for constant columns, and for integer-valued or heavily
    repeated ones, whose log-likelihood rewards spikes on the repeated values
    rather than the fit. A subclass of :class:`UserWarning`, so that it can be
    filtered on its own, e.g. when the data are known to be discrete::

        warnings.filterwarnings("ignore", category=DegenerateDataWarning)
    """


class DeviceWarning(UserWarning):
    """A model was loaded on another device than the one it was fitted on."""


class InverseNotAvailable(NotImplementedError):
    """Raised by a transform or model that has no (tractable) inverse."""
