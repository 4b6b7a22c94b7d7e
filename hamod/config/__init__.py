"""Configuration schema: cluster files and module files (pydantic)."""
