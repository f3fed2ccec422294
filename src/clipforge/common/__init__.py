"""Small mechanisms every layer uses, kept once: atomic file writes, optional imports, vector
normalisation and YAML config files. Layer 0: imports nothing else from clipforge."""
