"""Errors a user can fix. The CLI prints them as one line and exits 2, without a traceback."""


class UserError(Exception):
    """Bad input: an unknown name, a missing file, an unwritable path. The message names the fix."""


class EnvError(Exception):
    """The environment itself failed (crashed, server down). Recorded as `env_error`, never as reward 0."""


class RewardModelError(Exception):
    """The reward model could not score (its server is down or answered an error). Never turned into a score."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"reward model at {where} failed: {reason}")
        self.where = where
        self.reason = reason


class BadFileError(UserError, ValueError):
    """An input file that cannot be read as what it should be (a garbage line, a cut checkpoint)."""
