"""The project's user-facing error type."""


class EdgeLLMError(ValueError):
    """Bad input or configuration: the message names the file, key, value and allowed range.

    The command line prints it as one line and exits with status 2.
    """
