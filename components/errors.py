"""The project's error for mistakes a user can fix: a bad key, file, column or package.

The CLI prints a UserError as one line and exits 2. Any other exception is a
bug or an outage and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in what the user gave us; the message names it and what to do."""


class ConfigError(UserError, ValueError):
    """A configuration file, override or section is invalid."""
