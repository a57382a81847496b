"""ragkit's HTTP service: `create_app(ServerConfig(...))` gives the FastAPI app that `ragkit serve` runs."""

from ragkit.server.app import create_app
from ragkit.server.auth import KeyRing
from ragkit.server.config import ServerConfig

__all__ = ["KeyRing", "ServerConfig", "create_app"]
