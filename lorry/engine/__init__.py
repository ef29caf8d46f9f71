"""Dispatching chunks to workers."""
