"""Errors a user can fix. Each message is one line: what is wrong, then how to fix it.

The CLI prints `error: <message>` and exits with status 2 for these; anything else is a bug
and keeps its traceback.
"""


class MMRError(Exception):
    """Base class of the errors the CLI reports as one line."""


class UnknownDatasetError(MMRError):
    pass


class DatasetLayoutError(MMRError):
    pass


class EncoderUnavailableError(MMRError):
    pass


class StoreMismatchError(MMRError):
    pass


class ConfigError(MMRError):
    pass
