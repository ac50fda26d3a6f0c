"""Replicate: the gateway to its HTTP API, webhook signatures, and the built-in emulator."""
