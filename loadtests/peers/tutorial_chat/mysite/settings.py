"""Settings of the baseline peer: the Django Channels tutorial chat, as the tutorial writes it.

Only two things differ from the tutorial: the channel layer's Redis comes from
`PEER_REDIS_URL`, and its redis-py pool is configured (see CHANNEL_LAYERS) so that
the layer survives idle sockets and connect bursts on redis-py 8.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "baseline-peer-not-secret-load-tests-only")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "daphne",
    "chat",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "mysite.urls"
ASGI_APPLICATION = "mysite.asgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
USE_TZ = True

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"),
                    # DESIGN "Known pitfalls": redis-py 8's default socket timeout (5 s)
                    # equals the layer's 5 s BZPOPMIN wait, so an idle layer raises
                    # "Timeout reading" and kills consumers: give the socket more time.
                    "socket_timeout": 15,
                    "socket_connect_timeout": 5,
                    "socket_keepalive": True,
                    "health_check_interval": 30,
                    # redis-py 8's pool raises past max_connections instead of waiting;
                    # a burst of connects does one group_add each, so size it for bursts.
                    "max_connections": 4000,
                }
            ],
        },
    },
}
