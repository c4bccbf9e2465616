"""The one exception type that the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RatbenchError(Exception):
    """A user-facing error: bad input, a missing file, an unknown name.

    The message must say what is wrong and how to fix it, on one line.
    """


class MissingDataError(RatbenchError):
    """A dataset file is not where it is expected; the message names it and where to get it."""


class DataFormatError(RatbenchError):
    """A line of a dataset file is malformed; the message gives file, line number and what is wrong."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice (compared ignoring case, so
    ``RNP`` suggests ``rnp``), or an empty string."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
