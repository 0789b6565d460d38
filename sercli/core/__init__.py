"""The small core: the plugin contract's errors, records, the plugin manager and file I/O. Imports nothing above it."""
