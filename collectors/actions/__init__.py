"""Allow-listed, typed, signed actions the agent executes on the device (no Django here).

Every action: validate parameters, snapshot the old value, preview (old -> new), apply, verify by
reading back, roll back automatically when verification fails, and undo later from the snapshot.
Requests arrive over Redis signed with THOXDASH_AGENT_KEY (see signing.py); the executor
(executor.py) consumes them with a consumer group and writes one result per request.
"""
