"""The one exception type for bad input that the command line reports without a traceback."""


class ConfigurationError(ValueError):
    """Bad configuration, data or checkpoint, found before any training work starts.

    The message names the offending argument or file, what was expected, what was received
    and how to fix it. ``gan-lightning`` prints it on one line and exits with status 2.
    """


class TrainingDivergedError(RuntimeError):
    """A loss or gradient became NaN or infinite during training (``nan_policy: stop``).

    The message names the training step, the network, the value and the likely causes.
    No checkpoint is written after the step it happened in. ``gan-lightning`` prints it on
    one line and exits with status 1.
    """
