import sqlite3, time, os, json, tempfile, resource
doc = '{"_id": {"__neosqlite_objectid__": true, "id": "6b1150bb4695b2b30d384312"}, "conversationId": "conv-%06d", "senderId": "user-000001", "recipientId": "user-000002", "message": "bench message 1 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "attachments": [], "isRead": false, "readAt": null, "createdAt": {"$date": "2026-12-03T11:21:31"}, "updatedAt": {"$date": "2026-12-03T11:21:31"}, "isDeleted": false, "deletedAt": null, "clientMessageId": "c-%012d"}'
IDX = {
 "seed4": ["CREATE INDEX a ON t(json_extract(data, '$.conversationId'))","CREATE INDEX b ON t(json_extract(data, '$.senderId'))","CREATE INDEX c ON t(json_extract(data, '$.recipientId'))","CREATE INDEX d ON t(json_extract(data, '$.createdAt'))"],
 "unique": ["CREATE UNIQUE INDEX u ON t(json_extract(data, '$.conversationId'), json_extract(data, '$.senderId'), json_extract(data, '$.clientMessageId'))"],
 "pending": ["CREATE INDEX p ON t(json_extract(data, '$.publishClaimUntil'))"],
}
def run(name, groups, autocommit=True, n=4000):
    d=tempfile.mkdtemp(); db=sqlite3.connect(d+"/x.db"); db.isolation_level=None
    db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, _id TEXT, data TEXT NOT NULL)")
    db.execute("CREATE UNIQUE INDEX i ON t(_id)")
    for g in groups:
        for s in IDX[g]: db.execute(s)
    t=time.thread_time()
    if not autocommit: db.execute("BEGIN")
    for i in range(n):
        db.execute("INSERT INTO t(data,_id) VALUES (?,?)", (doc % (i, i), "%024x" % i))
        if not autocommit and i % 16 == 15: db.execute("COMMIT"); db.execute("BEGIN")
    if not autocommit: db.execute("COMMIT")
    print(f"{name:32s} {(time.thread_time()-t)/n*1e6:6.1f} us/insert")
for r in range(2):
    run("table+_id only", [])
    run("+seed4", ["seed4"])
    run("+seed4+unique", ["seed4","unique"])
    run("+seed4+unique+pending (ours)", ["seed4","unique","pending"])
    run("ours, 16 per transaction", ["seed4","unique","pending"], autocommit=False)
