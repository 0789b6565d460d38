"""Synthesis: text records spoken by TTS engines (sercli synthesize, sercli degrade)."""
