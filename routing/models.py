"""Upstreams, public models and their routes (the gateway issue fills this in)."""
