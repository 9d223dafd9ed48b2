"""User-facing errors: every message names the file, the line or row, and the field.

`PrefkitError` and its subclasses are user errors: the CLI prints the message and exits
with status 2, no traceback. Anything else escaping the CLI is a prefkit bug.
"""

from __future__ import annotations


class PrefkitError(Exception):
    """A problem with the user's input or options, explained in the message."""


class InputError(PrefkitError):
    """A record in an input file is malformed.

    Parameters
    ----------
    file
        The file being read.
    where
        ``"line 12"``, ``"row 7"``, ``"item 3"``, or ``None`` for the file as a whole.
    field
        The field at fault, or ``None``.
    message
        What is wrong, in plain words.
    """

    def __init__(self, file: str, where: str | None, field: str | None, message: str):
        self.file = file
        self.where = where
        self.field = field
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        loc = self.file + (f", {self.where}" if self.where else "")
        fld = f", field {self.field!r}" if self.field else ""
        return f"{loc}{fld}: {self.message}"


class RecordError(Exception):
    """Raised by a format adapter for one bad record; the reader adds file and line."""

    def __init__(self, field: str | None, message: str):
        self.field = field
        self.message = message
        super().__init__(f"field {field!r}: {message}" if field else message)
