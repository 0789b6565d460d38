"""Backbone `fbank`: torchaudio log-mel filterbank frames (offline, no weights)."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    from sercli_fbank.fbank import Fbank

    register(Fbank)
