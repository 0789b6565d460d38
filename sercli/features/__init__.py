"""Features: the feature store, reading features, and extraction (sercli extract)."""
