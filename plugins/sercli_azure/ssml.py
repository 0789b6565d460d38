"""SSML documents for Azure neural voices, with every text and attribute XML-escaped."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

SSML_NS = "http://www.w3.org/2001/10/synthesis"
MSTTS_NS = "https://www.w3.org/2001/mstts"

# Characters XML 1.0 forbids even when escaped (C0 controls other than tab, LF, CR).
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def build_ssml(text: str, voice: str, style: str | None = None, degree: float = 1.0,
               language: str = "en-US") -> str:
    """``<speak><voice name=V><mstts:express-as style=S styledegree=D>text</...></voice></speak>``;
    without a style the text goes straight into ``<voice>`` (the voice's neutral delivery)."""
    body = escape(_FORBIDDEN.sub(" ", text))
    if style:
        body = (f"<mstts:express-as style={quoteattr(style)} styledegree=\"{degree:g}\">"
                f"{body}</mstts:express-as>")
    return (
        f'<speak version="1.0" xmlns="{SSML_NS}" xmlns:mstts="{MSTTS_NS}" '
        f"xml:lang={quoteattr(language)}><voice name={quoteattr(voice)}>{body}</voice></speak>"
    )
