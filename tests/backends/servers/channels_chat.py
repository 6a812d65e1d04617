"""The chat of the Django Channels tutorial, on a real Redis channel layer, under daphne.

As the tutorial writes it (https://channels.readthedocs.io/en/stable/tutorial/):
a consumer joins the group of its room (``ws/chat/<room_name>/``), each
message it receives is ``group_send`` to the room, and every member of the
room (the sender too) gets ``{"message": ...}``. The WebSocket stack is wrapped
in ``AllowedHostsOriginValidator``: a handshake without an allowed ``Origin``
is refused with a 403.

    python -m tests.backends.servers.channels_chat --port 8000 --redis-port 6379
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import django
from django.conf import settings


def configure(redis_port: int) -> None:
    """The tutorial's settings, in code (one module instead of a project)."""
    settings.configure(
        DEBUG=True,  # with no ALLOWED_HOSTS: localhost, 127.0.0.1 and [::1] are allowed
        ALLOWED_HOSTS=[],
        SECRET_KEY="tests-only",
        INSTALLED_APPS=["daphne", "django.contrib.auth", "django.contrib.contenttypes",
                        "django.contrib.sessions", "channels"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        ROOT_URLCONF=__name__,
        CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                    "CONFIG": {"hosts": [("127.0.0.1", redis_port)]}}},
    )
    django.setup()


urlpatterns: list[Any] = []  # no HTTP views: the chat is the WebSocket route


def build_application() -> Any:
    from channels.auth import AuthMiddlewareStack
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator
    from django.core.asgi import get_asgi_application
    from django.urls import re_path

    class ChatConsumer(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
            self.room_group_name = f"chat_{self.room_name}"
            await self.channel_layer.group_add(self.room_group_name, self.channel_name)
            await self.accept()

        async def disconnect(self, close_code: int) -> None:
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

        async def receive(self, text_data: str | None = None, bytes_data: Any = None) -> None:
            text_data_json = json.loads(text_data or "{}")
            message = text_data_json["message"]
            await self.channel_layer.group_send(self.room_group_name,
                                                {"type": "chat.message", "message": message})

        async def chat_message(self, event: dict[str, Any]) -> None:
            message = event["message"]
            await self.send(text_data=json.dumps({"message": message}))

    websocket_urlpatterns = [re_path(r"ws/chat/(?P<room_name>\w+)/$", ChatConsumer.as_asgi())]
    return ProtocolTypeRouter({
        "http": get_asgi_application(),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    })


application: Any = None


def main() -> None:
    global application  # noqa: PLW0603 (daphne imports the ASGI app by its dotted name)
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    args = parser.parse_args()
    configure(args.redis_port)
    application = build_application()
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(["-b", "127.0.0.1", "-p", str(args.port),
                                f"{__name__}:application"])


if __name__ == "__main__":
    main()
