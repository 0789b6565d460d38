"""The error contract: ``RecordError`` skips one record, ``SercliError`` ends the run with one line."""


class SercliError(Exception):
    """An error whose message is exactly what the user sees (one line, ideally with the fix)."""


class RecordError(SercliError):
    """One record could not be processed; the command reports it and carries on."""
