"""The one exception type for bad input that the command line reports without a traceback."""


class ConfigurationError(ValueError):
    """Bad configuration, data or checkpoint, found before any training work starts.

    The message names the offending argument or file, what was expected, what was received
    and how to fix it. ``gan-lightning`` prints it on one line and exits with status 2.
    """
