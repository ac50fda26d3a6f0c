"""The event bus's backends, one per module as broadcaster lays its own out.

base.py       errors, the resync marker, reconnect backoff
memory.py     one process (`memory://`)
redis.py      Redis pub/sub (`redis://`, `rediss://`)
postgres.py   PostgreSQL LISTEN/NOTIFY (`postgres://`, `postgresql://`)
"""
