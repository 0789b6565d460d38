"""Offline sentence generator: phrase banks plus a small template grammar."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_llm_backends(register):
    from sercli_template.backend import TemplateBackend

    register(TemplateBackend)
