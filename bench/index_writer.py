"""Paced application writer for the index-build benchmark.

Updates one random row of `items` every 1/RATE seconds, autocommit, until
the file STOP exists, and prints one JSON line: writes made, the longest time a write
waited from when it was due until it was acknowledged, and the longest gap
between two acknowledged writes.

    python index_writer.py KIND WHERE ROWS RATE STOP
      KIND: postgres | mysql | sqlite; WHERE: a URL (postgres),
      HOST:PORT/DB (mysql) or a file path (sqlite)
"""
import json
import os
import random
import sys
import time

from switch_writer import connect


def main():
    kind, where, rows, rate, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    conn = connect(kind, where)
    ph = "?" if kind == "sqlite" else "%s"
    start = time.monotonic()
    worst_wait, worst_gap, last_ack, n = 0.0, 0.0, start, 0
    while True:
        due = start + n / rate
        now = time.monotonic()
        if n % 20 == 0 and os.path.exists(stop):
            break
        if due > now:
            time.sleep(due - now)
        conn.cursor().execute(f"UPDATE items SET n = n + 1 WHERE id = {ph}", (random.randint(1, rows),))
        acked = time.monotonic()
        worst_wait = max(worst_wait, acked - due)
        worst_gap = max(worst_gap, acked - last_ack)
        last_ack = acked
        n += 1
    print(json.dumps({"writes": n, "worst_wait_ms": round(worst_wait * 1000, 1), "worst_gap_ms": round(worst_gap * 1000, 1)}))


if __name__ == "__main__":
    main()
