"""Importing this module makes the interpreter's exit fast.

At exit, Python's final garbage collections walk every object alive, and torch and
transformers make hundreds of thousands at import: 1-2 s for every command (or worker
server) that loaded them. Freezing the objects first (``gc.freeze`` as the last exit
handler) skips that walk; reference counting still closes files and runs destructors.
"""

import atexit
import gc

atexit.register(gc.freeze)
