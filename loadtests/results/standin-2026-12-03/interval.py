"""Stand-in CPU per chat document through InsertOnce at a steady arrival rate, by min_interval."""
from typing import Any
import asyncio, socket, subprocess, sys, tempfile, time, json, shutil
from pathlib import Path
import psutil
from pymongo import AsyncMongoClient
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root
from realtime.batching import InsertOnce
from loadtests.bench.standin import SEED, IDEMPOTENCY, PENDING, message, free_port, cpu

async def case(port, proc, rate, interval, seconds, base):
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(f"mongodb://127.0.0.1:{port}/", retryWrites=True, w=1, heartbeatFrequencyMS=1000)
    coll = client["ii"]["chat_messages"]
    ins = InsertOnce(coll, ("conversationId", "senderId", "clientMessageId"), min_interval=interval)
    await ins.insert(message(base, 0, base))
    n = int(rate * seconds); loop = asyncio.get_running_loop()
    lat = []
    async def one(i):
        t = loop.time(); await ins.insert(message(base + i, i % 400, base + i)); lat.append(loop.time() - t)
    f0, c0, start = ins.flushes, cpu(proc), loop.time()
    tasks = []
    for i in range(1, n + 1):
        delay = start + i / rate - loop.time()
        if delay > 0: await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    spent = cpu(proc) - c0; flushes = ins.flushes - f0
    await client.close()
    lat.sort()
    return {"rate": rate, "interval_ms": interval * 1000, "docs": n, "flushes": flushes, "docs_per_flush": round(n / flushes, 1),
            "standin_us_per_doc": round(spent / n * 1e6, 1), "p50_ms": round(lat[len(lat)//2]*1000, 1), "p99_ms": round(lat[int(len(lat)*.99)]*1000, 1)}

async def main():
    data = Path(tempfile.mkdtemp(prefix="standin-")); port = free_port()
    srv = subprocess.Popen([str(Path(sys.executable).parent / "nx-27017"), "--host", "127.0.0.1", "-p", str(port), "--data-dir", str(data),
                            "--log-file", str(data / "nx.log"), "--pid-file", str(data / "nx.pid")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try: socket.create_connection(("127.0.0.1", port), 0.2).close(); break
            except OSError: time.sleep(0.1)
        proc = psutil.Process(srv.pid)
        c: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(f"mongodb://127.0.0.1:{port}/"); await c["ii"]["chat_messages"].create_indexes([*SEED, IDEMPOTENCY, PENDING]); await c.close()
        rows = []; base = 0
        for rnd in range(int(sys.argv[2]) if len(sys.argv) > 2 else 2):
            for rate in (300, 1600, 2500):
                for interval in (0, 0.004, 0.012):
                    base += 100000
                    r = await case(port, proc, rate, interval, 4, base); rows.append(r); print(json.dumps(r), flush=True)
        if len(sys.argv) > 1: Path(sys.argv[1]).write_text(json.dumps({"rows": rows, "load": __import__("os").getloadavg()}, indent=1))
    finally:
        srv.terminate(); srv.wait(10); shutil.rmtree(data, ignore_errors=True)
asyncio.run(main())
