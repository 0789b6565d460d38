"""The two errors of the plugin contract (defined in `sercli.contract.errors`), where the rest
of sercli imports them from."""

from sercli.contract.errors import RecordError, SercliError

__all__ = ["RecordError", "SercliError"]
