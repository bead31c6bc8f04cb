"""ThoxDash on-device side: the agent, its telemetry sources, the latency proxy, record/replay.

Nothing in this package imports Django: it must stay small on an 8 GB Orin Nano.
"""
