import tempfile, time, bson, struct, sys
from nx_27017.handler import NeoSQLiteHandler
from nx_27017.wire_protocol import OP_MSG
import loadtests.bench.standin as s
def msg(body, docs=None):
    payload = b"\x00" + bson.encode(body)
    if docs is not None:
        seq = b"documents\x00" + b"".join(bson.encode(d) for d in docs)
        payload += b"\x01" + struct.pack("<i", len(seq) + 4) + seq
    raw = struct.pack("<iiii", 16 + 4 + len(payload), 1, 0, 2013) + struct.pack("<I", 0) + payload
    return OP_MSG.parse(raw)
def setup(indexes):
    h = NeoSQLiteHandler(data_dir=tempfile.mkdtemp())
    if indexes:
        assert h.handle_command(msg({"createIndexes": "chat_messages", "indexes": [m.document for m in indexes], "$db": "b"}))[1]["ok"]
    return h
lsid = {"id": bson.Binary(b"0123456789abcdef", 4)}
CASES = {
 "ours(retry,w1)": lambda k: {"lsid": lsid, "txnNumber": k, "writeConcern": {"w": 1}},
 "retry_off": lambda k: {"lsid": lsid, "writeConcern": {"w": 1}},
 "no_w": lambda k: {"lsid": lsid, "txnNumber": k},
}
ALL=[*s.SEED, s.IDEMPOTENCY, s.PENDING]
N=int(sys.argv[1]) if len(sys.argv)>1 else 2400
for rnd in range(2):
  for size in (1, 16, 64):
    for name, extra in [*CASES.items(), ("ours, no pending index", CASES["ours(retry,w1)"]), ("ours, no indexes", CASES["ours(retry,w1)"])]:
        h = setup([*s.SEED, s.IDEMPOTENCY] if "pending" in name else [] if "no indexes" in name else ALL)
        msgs = [msg({"insert": "chat_messages", "ordered": False, **extra(k+1), "$db": "b"}, [s.message(k*size+i, k, k*size+i) for i in range(size)]) for k in range(N//size)]
        for m in msgs[:3]: h.handle_insert(m)
        t = time.thread_time()
        for m in msgs[3:]: h.handle_insert(m)
        n = (len(msgs)-3)*size
        print(f"{size:3d} {name:24s} {(time.thread_time()-t)/n*1e6:6.1f} us/doc", flush=True)
