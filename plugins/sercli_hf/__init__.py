"""Backbones `hf:ID_OR_DIR` and short names (wav2vec2-base, hubert-large, wavlm-base-plus, ...):
self-supervised speech models through transformers. See sercli_hf.backbone."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    from sercli_hf.backbone import HFBackbone, short_name_classes  # no torch until a backbone runs

    register(HFBackbone)
    for cls in short_name_classes():
        register(cls)
    from sercli_hf.whisper import register_whisper  # whisper-tiny.en, whisper:; Whisper for hf: too

    register_whisper(register)
