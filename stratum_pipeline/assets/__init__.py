"""Software-defined assets: thin wrappers that read, call ml/ or validation, write, and report."""
