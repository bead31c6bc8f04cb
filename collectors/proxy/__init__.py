"""The latency-recording reverse proxy (see server.py) and its parts."""
