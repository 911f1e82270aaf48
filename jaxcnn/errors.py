"""Exceptions for problems a user can fix.

Every one carries a message that names what went wrong and what to do about it.
The command line prints that message (no traceback) and exits with status 2.
"""


class JaxcnnError(Exception):
    """Base class: a problem with the user's input, data, files or settings."""


class DataError(JaxcnnError):
    """A data source is missing, unreachable, malformed or too small for the request."""


class CheckpointError(JaxcnnError):
    """A checkpoint is missing, corrupt, pickle-bearing or for another architecture."""


class DivergenceError(JaxcnnError):
    """Training diverged: a non-finite value, or a loss far outside any sane range."""


class ConfigError(JaxcnnError):
    """An invalid combination of settings."""


class OutputError(JaxcnnError):
    """An output folder or file cannot be used: not a folder, unwritable, full, or locked."""
