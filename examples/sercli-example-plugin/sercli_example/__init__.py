"""A third-party sercli plugin: frame log-energy and zero-crossing rate as a backbone.

Install it next to sercli (`pip install ./examples/sercli-example-plugin`) and it appears in
`sercli plugins`; then `sercli extract ... --backbone energy` uses it.
"""

from sercli.hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    from sercli_example.energy import Energy

    register(Energy)
