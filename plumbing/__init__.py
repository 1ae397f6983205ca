"""Shared plumbing: settings, logging, the health and metrics server, topic names, backoff."""
