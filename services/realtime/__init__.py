"""Realtime: project events (recorded, numbered, published, followed) and the event bus."""
