"""Built-in experiment trackers: `tensorboard` (offline event files)."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_trackers(register):
    from sercli_trackers.tensorboard import TensorBoard

    register(TensorBoard)
