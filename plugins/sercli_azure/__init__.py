"""Azure AI Speech: the ``azure`` TTS engine (neural voices with emotional SSML styles).

The key and region are read from ``AZURE_SPEECH_KEY`` and ``AZURE_SPEECH_REGION`` only.
"""

from sercli.hookspecs import hookimpl


@hookimpl
def register_tts_engines(register):
    from sercli_azure.engine import AzureTTS  # the Speech SDK is imported on first request

    register(AzureTTS)
