"""sercli: speech emotion recognition with synthetic emotional speech."""

__version__ = "0.1.0"
