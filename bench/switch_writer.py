"""Paced application writer for the switch benchmark.

Inserts one row every 1/RATE seconds for SECONDS seconds into `items`, on
whichever side the routing file names ("source" until the switch's hook
writes "target"). A write refused by Ferry's fence is retried every
millisecond until a side takes it, as an application's retry loop would.
Prints one JSON line: writes made, fence refusals, the longest time a write
waited from when it was due to when a side acknowledged it, and the longest
gap between two acknowledged writes.

    python switch_writer.py ROUTING RATE SECONDS SOURCE_KIND SOURCE TARGET_KIND TARGET
      KIND: postgres | mysql | sqlite; where: a URL (postgres),
      HOST:PORT/DB (mysql) or a file path (sqlite)
"""
import json
import sys
import time

FENCED = "Ferry fenced writes"


def connect(kind, where):
    if kind == "postgres":
        import psycopg

        return psycopg.connect(where, autocommit=True)
    if kind == "mysql":
        import pymysql

        host_port, _, db = where.partition("/")
        host, _, port = host_port.partition(":")
        return pymysql.connect(host=host, port=int(port or 3306), user="root", password="", database=db, autocommit=True)
    import sqlite3

    conn = sqlite3.connect(where, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def main():
    routing, rate, seconds, source_kind, source, target_kind, target = sys.argv[1:8]
    rate, seconds = float(rate), float(seconds)
    conns = {"source": connect(source_kind, source), "target": connect(target_kind, target)}
    ph = {"source": "?" if source_kind == "sqlite" else "%s", "target": "?" if target_kind == "sqlite" else "%s"}
    start = time.monotonic()
    next_id, refused, worst_wait, worst_gap = 10_000_000, 0, 0.0, 0.0
    last_ack = start
    n = 0
    while True:
        due = start + n / rate
        now = time.monotonic()
        if due - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        while True:
            try:
                side = open(routing).read().strip() or "source"
            except OSError:
                side = "source"
            try:
                conns[side].cursor().execute(f"INSERT INTO items (id, n) VALUES ({ph[side]}, {ph[side]})", (next_id, n))
                break
            except Exception as e:  # the fence, or a lock the switch holds
                if FENCED not in str(e):
                    raise
                refused += 1
                time.sleep(0.001)
        acked = time.monotonic()
        worst_wait = max(worst_wait, acked - due)
        worst_gap = max(worst_gap, acked - last_ack)
        last_ack = acked
        next_id += 1
        n += 1
    print(json.dumps({"writes": n, "refused": refused, "worst_wait_ms": round(worst_wait * 1000, 1),
                      "worst_gap_ms": round(worst_gap * 1000, 1), "rate": n / (time.monotonic() - start)}))


if __name__ == "__main__":
    main()
