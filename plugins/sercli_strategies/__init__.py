"""Strategies for learning from real plus synthetic emotional speech (Ma et al., 2023)."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_strategies(register):
    from sercli_strategies.basic import Mix, RealOnly

    register(RealOnly)
    register(Mix)
