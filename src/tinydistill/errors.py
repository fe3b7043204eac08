"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class TinyDistillError(Exception):
    """A problem with the user's input (data, config, model paths) rather than a bug."""


class Interrupted(TinyDistillError):
    """Training stopped by SIGINT/SIGTERM after writing a checkpoint (``--resume`` continues it)."""
