"""The plugin contract, one module per family (part of the core).

Plugins import these classes from ``sercli.api`` (or ``sercli.base``, the same names); the
modules here say what each method receives and returns. ``common`` holds what all share.
"""
