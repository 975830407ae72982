"""HTTP endpoints of conversations, chat history and notifications for apps that start cold."""

from ninja import Router

router = Router(tags=["messaging"])
