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
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
