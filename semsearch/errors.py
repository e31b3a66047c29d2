"""The project's one error family: each message says what was wrong and what to do next."""


class SemsearchError(Exception):
    """Base class; the CLI prints the message on one line and exits non-zero."""


class ConfigError(SemsearchError):
    """An unknown preset or key, or a value of the wrong type."""


class UsageError(ConfigError):
    """Options that do not go together, or one that is missing (the CLI exits with 2, as for a
    bad flag)."""


class DataError(SemsearchError):
    """A data file or folder is missing, empty or malformed."""


class UnknownFieldError(DataError):
    """A filter names a metadata field that no document of the index has (yet): the request is
    well formed, the index it met cannot answer it (HTTP 409, not 422)."""


class NoRescorer(DataError):
    """A search asks for a second phase where none is loaded or recorded: well formed, but the
    index or server it met cannot answer it (HTTP 409, not 422)."""


class ModelError(SemsearchError):
    """A model folder is missing, incomplete or of another format version."""


class IndexError_(SemsearchError):
    """An index folder is missing, corrupt, or was built with another model."""


class WriteFailed(SemsearchError):
    """A write failed part way (disk full, file-size limit, I/O error); what it staged is gone
    and the previous version is untouched (see semsearch/write_errors.py)."""


class TrainingInterrupted(SemsearchError):
    """Training stopped early (Ctrl-C); a resumable checkpoint was saved."""
