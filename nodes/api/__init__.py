"""The operator surface of a node: HTTP API, /metrics and the dashboard (served by nodes/api/server.py)."""
