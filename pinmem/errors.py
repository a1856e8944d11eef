"""User-facing errors.

Anything a user can cause (a wrong path, a corrupt file, a bad config key) raises a subclass of
:class:`PinmemError` whose message names the file, folder or key. The command line prints the message and
exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class PinmemError(Exception):
    """Base class of errors whose message is meant for the user, not a traceback."""


class DatasetLayoutError(PinmemError):
    """A dataset root or folder is missing or does not have the expected layout."""


class CorruptFileError(PinmemError):
    """An image or label file cannot be decoded, or is not what its dataset promises."""


class ConfigError(PinmemError):
    """A configuration key or value is invalid."""


class WeightsError(PinmemError):
    """A weights file cannot be read or does not match the model (the message lists the offending keys)."""
