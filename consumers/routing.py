"""WebSocket URL routes."""

from django.urls import path

from consumers.socket import SocketConsumer

websocket_urlpatterns = [path("ws/", SocketConsumer.as_asgi())]
