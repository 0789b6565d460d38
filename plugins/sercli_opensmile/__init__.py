"""Backbone `egemaps` (and `compare`): openSMILE functionals through the opensmile wheel."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    from sercli_opensmile.smile import ComParE, EGeMAPS

    register(EGeMAPS)
    register(ComParE)
