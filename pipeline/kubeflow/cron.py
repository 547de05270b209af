"""KFP's cron format: six fields, seconds first (robfig/cron), checked before submitting."""

from __future__ import annotations

import re

from components.errors import UserError

FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")
_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-LW#]+$")


class CronError(UserError, ValueError):
    """The cron expression is not in KFP's format."""


def check_cron(expression: str) -> str:
    """Returns the expression, normalized to single spaces.

    Raises:
        CronError: Not six fields (a five-field Unix cron gets the six-field
            equivalent in the message), or a field with characters cron
            does not use.
    """
    fields = expression.split()
    if len(fields) == 5:
        equivalent = "0 " + " ".join(fields)
        raise CronError(
            f"--cron {expression!r} has 5 fields; KFP's cron has 6, seconds first. "
            f"The same schedule is --cron {equivalent!r}"
        )
    if len(fields) != 6:
        raise CronError(
            f"--cron {expression!r} has {len(fields)} fields; KFP expects 6: "
            f"{' '.join(FIELDS)} (e.g. '0 0 2 * * *' for 02:00 daily)"
        )
    for name, value in zip(FIELDS, fields, strict=True):
        if not _FIELD.match(value):
            raise CronError(f"--cron {expression!r}: the {name} field {value!r} is not valid cron")
    return " ".join(fields)
