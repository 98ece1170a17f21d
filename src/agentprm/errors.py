"""Errors a user can fix. The CLI prints them as one line and exits 2, without a traceback."""


class UserError(Exception):
    """Bad input: an unknown name, a missing file, an unwritable path. The message names the fix."""


class EnvError(Exception):
    """The environment itself failed (crashed, server down). Recorded as `env_error`, never as reward 0."""


class BadFileError(UserError, ValueError):
    """An input file that cannot be read as what it should be (a garbage line, a cut checkpoint)."""
