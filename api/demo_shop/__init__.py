"""The demo shop: HTML pages with the tracker snippet, to drive Attimo by hand or by bots."""

from api.demo_shop.routes import router

__all__ = ["router"]
