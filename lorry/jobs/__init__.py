"""Bulk jobs: accepting and staging input, running chunks, and results."""
