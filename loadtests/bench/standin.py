"""What the MongoDB stand-in (nx-27017) spends of its own CPU per chat message, by client setting.

    python -m loadtests.bench.standin [--batches 40] [--sizes 1,8,64] [--cases all] [--json out.json]

Starts nx-27017 on a free port with a temporary data folder, creates `chat_messages` with the
indexes the server creates (the seed's four and the chat path's two), and inserts the chat
path's documents as the chat path does (one `insert_many(ordered=False)` per batch), under each
case's client settings. Per case and batch size: the stand-in's CPU (user + system, all threads)
per document and per batch, from psutil before and after, with nothing else talking to it.
Imports nothing from the code base (like the rest of `loadtests`): the document shape and the
index list are restated here, and must follow `realtime/chat.py` and `realtime/documents.py`.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from bson import ObjectId
from pymongo import ASCENDING, IndexModel, MongoClient

BIN = Path(sys.executable).parent

SEED = [
    IndexModel([(field, ASCENDING)], name=f"{field}_1")
    for field in ("conversationId", "senderId", "recipientId", "createdAt")
]
IDEMPOTENCY = IndexModel(
    [("conversationId", ASCENDING), ("senderId", ASCENDING), ("clientMessageId", ASCENDING)],
    name="conversationId_1_senderId_1_clientMessageId_1",
    unique=True,
    partialFilterExpression={"clientMessageId": {"$type": "string"}},
)
PENDING = IndexModel([("publishClaimUntil", ASCENDING)], name="publishClaimUntil_1", sparse=True)

#: name -> (client options, indexes)
CASES: dict[str, tuple[dict[str, Any], list[IndexModel]]] = {
    "ours": ({"retryWrites": True, "w": 1}, [*SEED, IDEMPOTENCY, PENDING]),
    "retry_off": ({"retryWrites": False, "w": 1}, [*SEED, IDEMPOTENCY, PENDING]),
    "no_w": ({"retryWrites": True}, [*SEED, IDEMPOTENCY, PENDING]),
    "no_pending_index": ({"retryWrites": True, "w": 1}, [*SEED, IDEMPOTENCY]),
    "no_unique_index": ({"retryWrites": True, "w": 1}, [*SEED, PENDING]),
    "no_indexes": ({"retryWrites": True, "w": 1}, []),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def message(conversation: int, sender: int, n: int) -> dict[str, Any]:
    """A document as `ChatService.send` stores it."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return {
        "_id": ObjectId(),
        "conversationId": f"conv-{conversation:06d}",
        "senderId": f"user-{sender:06d}",
        "recipientId": f"user-{sender + 1:06d}",
        "message": f"bench message {n} " + "x" * 40,
        "attachments": [],
        "isRead": False,
        "readAt": None,
        "createdAt": now,
        "updatedAt": now,
        "isDeleted": False,
        "deletedAt": None,
        "clientMessageId": f"c-{n:012d}",
    }


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def run_case(port: int, proc: psutil.Process, name: str, size: int, batches: int) -> dict[str, Any]:
    options, indexes = CASES[name]
    client: MongoClient[dict[str, Any]] = MongoClient(f"mongodb://127.0.0.1:{port}/", **options)
    coll = client["standin_bench"]["chat_messages"]
    coll.drop()
    if indexes:
        coll.create_indexes(indexes)
    seq = 0
    for _ in range(5):  # warm: table, statement cache, connection
        coll.insert_many([message(seq + i, seq + i, seq + i) for i in range(size)], ordered=False)
        seq += size
    docs = [[message(seq + b * size + i, b, seq + b * size + i) for i in range(size)] for b in range(batches)]
    before, wall = cpu(proc), time.perf_counter()
    for batch in docs:
        coll.insert_many(batch, ordered=False)
    spent, wall = cpu(proc) - before, time.perf_counter() - wall
    client.close()
    n = size * batches
    return {
        "case": name,
        "batch": size,
        "documents": n,
        "us_per_doc": round(spent / n * 1e6, 1),
        "us_per_batch": round(spent / batches * 1e6, 1),
        "wall_us_per_doc": round(wall / n * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--sizes", default="1,8,64")
    parser.add_argument("--cases", default="all")
    parser.add_argument("--rounds", type=int, default=2, help="every case this many times, alternated")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    names = list(CASES) if args.cases == "all" else args.cases.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    data = Path(tempfile.mkdtemp(prefix="standin-"))
    port = free_port()
    server = subprocess.Popen(
        [
            str(BIN / "nx-27017"),
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--data-dir",
            str(data),
            "--log-file",
            str(data / "nx.log"),
            "--pid-file",
            str(data / "nx.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        proc = psutil.Process(server.pid)
        for _ in range(args.rounds):
            for size in sizes:
                for name in names:
                    row = run_case(port, proc, name, size, max(args.batches, 1) if size > 1 else args.batches * 8)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(data, ignore_errors=True)
    if args.json:
        meta = {"when": dt.datetime.now(dt.UTC).isoformat(), "cpus": os.cpu_count(), "load": os.getloadavg()}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
