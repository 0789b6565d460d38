"""Text: sentences written by an LLM backend (sercli gen-text)."""
