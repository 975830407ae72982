"""The WebSocket close codes of the protocol, the one table of them, with what a client should do after each.

Owned by the realtime core (the hub closes slow readers, the runtime closes revoked and
expired sessions); the consumer imports it from here. Only this table closes a socket: a bad
frame gets an error and the socket stays open (PROTOCOL.md).
"""

NORMAL = 1000
MESSAGE_TOO_BIG = 1009  # a frame over 1 MiB, or a third oversize frame within 60 s: fix the client
INTERNAL_ERROR = 1011  # the server could not write a frame to this socket (a server bug): reconnect with `since`
SERVICE_RESTART = 1012  # server shutting down: reconnect (another process) and resubscribe with `since`
SLOW_CONSUMER = 4008  # the client read too slowly: reconnect and resubscribe with `since`
UNAUTHORIZED = 4401  # no, bad, expired token or no auth in time: log in again, then reconnect
SESSION_REVOKED = 4409  # logged out elsewhere: do not reconnect with this token
RATE_LIMITED = 4429  # kept flooding after 10 s of refusals: back off before reconnecting
