"""The production server's command line, built in one place:
`python -m pms.server [--workers N] [--host H] [--port P]`.

scripts/serve (pms/devstack.py), the Dockerfile and docker-compose.yml all start uvicorn through
this module, so they share the flags below and the proxy-header rule. `--workers` (default:
`$WEB_CONCURRENCY`, else the cores) uvicorn processes share the port, each on a SO_REUSEPORT
socket of its own (pms/launch.py says why not uvicorn's own `--workers`).

- uvicorn trusts `X-Forwarded-For`/`X-Forwarded-Proto` from 127.0.0.1 unless told otherwise,
  so any local process (or a client reaching the app through a local port forward) could
  pick its own address and dodge the per-address login limit. With PMS_TRUST_X_FORWARDED_FOR
  off (the default) uvicorn gets `--forwarded-allow-ips ""`: it trusts no one and the client
  address is the peer's. With it on, `--forwarded-allow-ips` is PMS_FORWARDED_ALLOW_IPS
  (the proxy's addresses, comma-separated; 127.0.0.1 when unset).

It reads the two variables itself (not Django's settings: nothing else needs to be set up to
start the server); apps/common/http.py `client_ip` follows the same switch.

- Per-message deflate (RFC 7692) is declined unless PMS_WS_DEFLATE is on. Browsers offer it and
  uvicorn accepts by default; then every frame to such a socket is compressed for that socket
  alone (a fanned-out event once per socket, not once per codec), ~9 µs of zlib per 460-byte chat
  event here, and its zlib state holds ~35 KiB per socket (an idle socket is ~14 KiB without).
  Our events are small and our mobile and server clients offer none; the saving is bandwidth
  (460 -> ~90 bytes), which an operator on slow links can choose (docs/benchmarks.md, "Issue 14,
  fifth round").
"""

import argparse
import os
import sys
from collections.abc import Mapping

from pms import launch

TRUE = frozenset({"1", "true", "yes", "on"})
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1"

# PROTOCOL.md: pings every 25 s, a peer silent for 60 s is closed, frames over 1 MiB close 1009.
UVICORN_OPTIONS = [
    "--ws",
    "pms.wsprotocol:LeanWebSocketsProtocol",
    "--loop",
    "uvloop",
    "--http",
    "pms.httpprotocol:UpgradeFirstProtocol",
    "--lifespan",
    "off",
    "--ws-ping-interval",
    "25",
    "--ws-ping-timeout",
    "60",
    "--ws-max-size",
    "1048576",
]


def ws_options(environ: Mapping[str, str]) -> list[str]:
    """uvicorn's per-message deflate flag for PMS_WS_DEFLATE (off unless set)."""
    deflate = environ.get("PMS_WS_DEFLATE", "").strip().lower() in TRUE
    return ["--ws-per-message-deflate", "true" if deflate else "false"]


def proxy_options(environ: Mapping[str, str]) -> list[str]:
    """uvicorn's proxy-header flags for PMS_TRUST_X_FORWARDED_FOR / PMS_FORWARDED_ALLOW_IPS."""
    trusted = environ.get("PMS_TRUST_X_FORWARDED_FOR", "").strip().lower() in TRUE
    allowed = (environ.get("PMS_FORWARDED_ALLOW_IPS") or DEFAULT_FORWARDED_ALLOW_IPS) if trusted else ""
    return ["--forwarded-allow-ips", allowed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=launch.default_workers())
    parser.add_argument("--host", default=os.environ.get("PMS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PMS_PORT", "8000")))
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    options = ["pms.asgi:application", *UVICORN_OPTIONS, *ws_options(os.environ), *proxy_options(os.environ)]
    # One worker: uvicorn is exec'd and becomes this process (signals, exit code and pid are its own).
    return launch.run(args.host, args.port, args.workers, options)


if __name__ == "__main__":
    sys.exit(main())
