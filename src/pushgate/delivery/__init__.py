"""Delivery: the engine (one attempt), the worker (claim loop) and the transport (HTTP)."""
