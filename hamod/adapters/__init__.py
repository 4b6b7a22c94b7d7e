"""Adapters: the I/O behind each port (heartbeats, VIP, scripts, data path...)."""
