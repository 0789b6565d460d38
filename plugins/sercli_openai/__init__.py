"""OpenAI (and OpenAI-compatible servers): the ``openai`` LLM backend and TTS engine.

The key is read from ``OPENAI_API_KEY`` only; ``base_url`` (or ``OPENAI_BASE_URL``) points at
vLLM, Ollama, llama.cpp's server or Azure OpenAI instead of api.openai.com.
"""

from sercli.hookspecs import hookimpl


@hookimpl
def register_llm_backends(register):
    from sercli_openai.llm import OpenAILLM  # the openai package is imported on first request

    register(OpenAILLM)


@hookimpl
def register_tts_engines(register):
    from sercli_openai.tts import OpenAITTS

    register(OpenAITTS)
