"""The cyclic garbage collector of a serving process (`pms.asgi` applies it once the app is built).

CPython's defaults suit scripts: a young collection every 700 container allocations, and
every full collection scans every object the process holds. A server allocates and frees
a few hundred objects per chat message or connect (frame dicts, futures, coroutine frames),
nearly all freed by reference counting before any collection sees them, and holds ~155,000-
200,000 objects it made at start-up (Django, the apps, the protocol tables) for its whole
life. `tune`:

- collects once, then freezes what start-up left (`gc.freeze`): those objects are never
  scanned again (nor collected: they live as long as the process anyway);
- runs young collections every 50,000 allocations (`GEN0_THRESHOLD`) and the older
  generations 20 and 100 times less often (`OLDER_THRESHOLDS`): the young generation is
  then mostly objects still in use, so far fewer collections do the same work. Garbage
  without cycles is still freed at once; a cycle waits for the next young collection.

Measured (docs/benchmarks.md, "Chat path, third pass" and "Connects, third round"), with a
`gc.callbacks` probe in the server: CPython's defaults spent at least 1.06 s collecting in
10.0 s of chat steps, and 2.92 s in one run of the three connect bursts (up to a fifth of
the server's CPU there; each full collection walked every start-up object); frozen with a
young generation of 10,000 the connect run spent 0.91 s. Side by side in the chat bench, this
policy lowered the server's CPU per message in 7 of 8 steps, by 3-27 %.

`PMS_GC_TUNE=0` keeps CPython's defaults: scripts/test sets it for the pytest process (a test
that leaks a resource must see its warning where it happens), the servers it starts get 1.
"""

import gc

GEN0_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 100)


def tune() -> tuple[int, int, int]:
    """Collect, freeze what is left, raise the thresholds; returns the thresholds it replaced."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *OLDER_THRESHOLDS)
    return previous
