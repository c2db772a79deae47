"""Several SFU workers and hosts: the registry of live workers, room placement, the worker
process, the per-host supervisor, and the local bus of the one-host (SQLite) setup.

    control node ──POST /api/v1/join──> placement.locate(room) ──> the worker's signaling URL
    SFU worker ──heartbeat (load, state) every cluster.heartbeat_seconds──> registry (store)

Everything shared lives in the Store (SQLite for one host, Redis for several), so one
implementation serves both; live events go over the bus (in-process + a Unix socket hub on
one host, Redis pub/sub across hosts).
"""
