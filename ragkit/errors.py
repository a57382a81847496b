"""Every error ragkit raises on purpose derives from RagkitError, so callers can catch one type.

Each message names the input at fault and the cause, because the person reading it is usually
looking at a job log, not at the code.
"""


class RagkitError(Exception):
    """Base class of ragkit's deliberate errors."""


class ModelLoadError(RagkitError):
    """A model could not be found, recognised or loaded."""


class InputError(RagkitError, ValueError):
    """Input to an API call is malformed (empty, wrong type, too long)."""


class InputTooLongError(InputError):
    """A text has more tokens than the model accepts and truncation was not requested."""


class StoreError(RagkitError):
    """The vector store failed or refused an operation."""


class StoreLockedError(StoreError):
    """An embedded store folder is held by another process."""


class CollectionNotFoundError(StoreError):
    """The named collection does not exist."""


class ModelMismatchError(StoreError):
    """A collection was built with a different model than the one used to open it."""


class ParseError(RagkitError):
    """A document could not be turned into text."""
