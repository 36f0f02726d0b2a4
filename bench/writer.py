"""Small-transaction writer for the capture-overhead benchmark (MariaDB, SQLite).

Each of N threads runs TPC-B-like transactions for T seconds: update one
account, one teller and one branch balance, insert a history row, commit.
Prints the committed transactions per second.

    python writer.py mysql HOST[:PORT] DB SECONDS THREADS
    python writer.py sqlite PATH SECONDS THREADS
"""
import random
import sqlite3
import sys
import threading
import time


def connect(kind, args):
    if kind == "mysql":
        import pymysql

        host, _, port = args[0].partition(":")
        return pymysql.connect(
            host=host, port=int(port or 3306), user="root", password="", database=args[1], autocommit=False
        )
    conn = sqlite3.connect(args[0], timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def run(kind, args, seconds, counts, i, accounts):
    conn = connect(kind, args)
    cur = conn.cursor()
    ph = "%s" if kind == "mysql" else "?"
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        aid, tid, bid, delta = random.randint(1, accounts), random.randint(1, 10), 1, random.randint(-5000, 5000)
        try:
            if kind == "sqlite":
                cur.execute("BEGIN IMMEDIATE")
            cur.execute(f"UPDATE accounts SET abalance = abalance + {ph} WHERE aid = {ph}", (delta, aid))
            cur.execute(f"UPDATE tellers SET tbalance = tbalance + {ph} WHERE tid = {ph}", (delta, tid))
            cur.execute(f"UPDATE branches SET bbalance = bbalance + {ph} WHERE bid = {ph}", (delta, bid))
            cur.execute(f"INSERT INTO history (tid, bid, aid, delta) VALUES ({ph}, {ph}, {ph}, {ph})", (tid, bid, aid, delta))
            if kind == "sqlite":
                cur.execute("COMMIT")
            else:
                conn.commit()
            n += 1
        except Exception:
            if kind == "sqlite":
                cur.execute("ROLLBACK")
            else:
                conn.rollback()
    counts[i] = n


def main():
    kind = sys.argv[1]
    if kind == "mysql":
        args, seconds, threads = sys.argv[2:4], float(sys.argv[4]), int(sys.argv[5])
    else:
        args, seconds, threads = sys.argv[2:3], float(sys.argv[3]), int(sys.argv[4])
    counts = [0] * threads
    workers = [threading.Thread(target=run, args=(kind, args, seconds, counts, i, 100000)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(f"{sum(counts) / seconds:.1f}")


if __name__ == "__main__":
    main()
