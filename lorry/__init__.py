"""Lorry: a self-hosted content API whose headline feature is asynchronous bulk
jobs. Importing ``lorry`` loads only the client, never the server."""

from lorry.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]

__version__ = "0.1.0"
