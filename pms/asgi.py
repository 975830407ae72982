"""ASGI entry point: HTTP through Django, WebSockets on /ws/ through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pms.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

# The admin's CSS and JS come from the app itself unless PMS_SERVE_STATIC=0 (then a
# proxy serves STATIC_ROOT, filled by collectstatic), as docs/deployment.md says.
django_http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app

from pms.bodylimit import BodyLimit  # noqa: E402

# A body announced larger than any endpoint takes is refused (413) before it is read.
http_app = BodyLimit(django_http_app, limit=settings.MAX_UPLOAD_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE)

from consumers.routing import websocket_application  # noqa: E402
from pms.gcpolicy import tune  # noqa: E402
from pms.health import DrainOnSigterm  # noqa: E402
from pms.wiring import WithOutboxRelay  # noqa: E402

# Origins are checked by the socket consumer itself (consumers/origin.py); no session or
# auth middleware wraps sockets: they cost ~9.5 KiB each and a token does the job.
# The outbox relay (apps/events/relay.py) runs as a task on the server's loop.
# On its first scope the process arms draining: SIGTERM answers /readyz 503 for PMS_DRAIN_SECONDS
# before the server closes sockets with 1012 (pms/health.py).
application = DrainOnSigterm(
    WithOutboxRelay(ProtocolTypeRouter({"http": http_app, "websocket": websocket_application}))
)

# The garbage collector set for a serving process, now that start-up is done (pms/gcpolicy.py;
# PMS_GC_TUNE=0 keeps CPython's defaults, as scripts/test does for its own process).
if settings.GC_TUNE:
    tune()
