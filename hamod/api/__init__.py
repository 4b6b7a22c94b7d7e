"""The REST API application (FastAPI), local Unix socket and mutual TLS between nodes."""
