"""A frame the server cannot write to a socket that is still open closes it 1011 with a logged error
(issue #15: it used to mark the connection dead at DEBUG and leave it open and mute forever)."""

import asyncio
import logging

import pytest

from realtime.closecodes import INTERNAL_ERROR
from realtime.codecs import JSON_CODEC, MSGPACK_CODEC
from realtime.hub import AsgiMessage, Connection


class StrictSocket:
    """An ASGI `send` that writes text frames as UTF-8 the way uvicorn does (`text.encode()`)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closes: list[int] = []

    async def send(self, message: AsgiMessage) -> None:
        data = message.get("bytes")
        self.written.append(data if data is not None else message["text"].encode())

    async def close(self, code: int) -> None:
        self.closes.append(code)


async def test_a_frame_that_cannot_be_written_closes_the_socket_1011_and_logs_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    socket = StrictSocket()
    conn = Connection("c1", JSON_CODEC.name, socket.send, socket.close)
    with caplog.at_level(logging.ERROR, logger="realtime.hub"):
        conn.send_direct({"type": "websocket.send", "text": "lone \ud800"})
        async with asyncio.timeout(2):
            while not socket.closes:
                await asyncio.sleep(0)
    assert socket.closes == [INTERNAL_ERROR]
    assert conn.dead
    assert any(record.levelno == logging.ERROR and "c1" in record.getMessage() for record in caplog.records)
    conn.send_direct({"type": "websocket.send", "text": "after"})
    assert socket.written == []


@pytest.mark.parametrize("codec", [JSON_CODEC, MSGPACK_CODEC])
async def test_the_codecs_write_a_lone_surrogate_as_the_replacement_character(codec) -> None:
    socket = StrictSocket()
    conn = Connection("c2", codec.name, socket.send, socket.close)
    conn.send_direct(codec.asgi_message({"type": "event", "data": {"message": "a\ud800b", "k\udc00": 1}}))
    assert socket.closes == [] and not conn.dead
    assert codec.decode(socket.written[0] if codec.binary else socket.written[0].decode()) == {
        "type": "event",
        "data": {"message": "a\ufffdb", "k\ufffd": 1},
    }
