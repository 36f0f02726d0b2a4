#!/usr/bin/env bash
# Change-capture overhead: source write throughput with Ferry's capture
# installed against without, in the same run.
#   (a) small transactions: pgbench (TPC-B-like, -c 4 -T 30) on PostgreSQL; the
#       same transaction mix from bench/writer.py (4 threads, 30 s) on MariaDB and SQLite
#   (b) one bulk UPDATE of 200,000 rows on each engine
#
#   bench/capture.sh [SECONDS]      results: bench/out/capture.md
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-30}
PG=${FERRY_TEST_PG:-postgres://postgres@127.0.0.1:5432}
OUT=bench/out
mkdir -p "$OUT"
cargo build --release -q -p ferry-cli
FERRY=$PWD/target/release/ferry
if ! "$OUT/writer-venv/bin/python" -c "import pymysql" 2>/dev/null; then
    python3 -m venv "$OUT/writer-venv" && "$OUT/writer-venv/bin/pip" install -q pymysql
fi
PY=$OUT/writer-venv/bin/python
my() { mariadb -h 127.0.0.1 -uroot "$@"; }
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }
now() { date +%s.%N; }

# Ferry installs capture the way `ferry run` does: by expand.
install_capture() { # source-url dir tables...
    local url=$1 dir=$2; shift 2
    { printf '[migration]\ndowntime = "0s"\nrollback = "lossless"\nowner = "bench"\n[source]\nurl = "%s"\n[target]\nurl = "sqlite:target.db"\n' "$url"
      for t in "$@"; do printf '[[table]]\nfrom = "%s"\n' "$t"; done; } > "$dir/ferry.toml"
    "$FERRY" --spec "$dir/ferry.toml" run --until expand > /dev/null
}
remove_capture() { "$FERRY" --spec "$1/ferry.toml" rollback > /dev/null; }

bulk_pg() { local t0; t0=$(now); psql -X -q "$PG/ferry_capture" -c "UPDATE accounts SET abalance = abalance + 1 WHERE aid <= 200000"; echo "$(now) - $t0" | bc; }
bulk_my() { local t0; t0=$(now); my ferry_capture -e "UPDATE accounts SET abalance = abalance + 1 WHERE aid <= 200000"; echo "$(now) - $t0" | bc; }
bulk_lite() { local t0; t0=$(now); sqlite3 "$1" "UPDATE accounts SET abalance = abalance + 1 WHERE aid <= 200000"; echo "$(now) - $t0" | bc; }

results=()
row() { results+=("| $1 | $2 | $3 | $(echo "scale=2; $3 / $2" | bc)x |"); echo "$1: without $2, with $3"; }
row_time() { results+=("| $1 | $2 s | $3 s | $(echo "scale=2; $2 / $3" | bc)x |"); echo "$1: without $2 s, with $3 s"; }

echo "== PostgreSQL"
psql_admin -c "DROP DATABASE IF EXISTS ferry_capture WITH (FORCE)" -c "CREATE DATABASE ferry_capture"
pgbench -q -i -s 2 "$PG/ferry_capture" > /dev/null 2>&1
psql -X -q "$PG/ferry_capture" -c "ALTER TABLE pgbench_accounts RENAME TO accounts" -c "ALTER TABLE pgbench_tellers RENAME TO tellers" -c "ALTER TABLE pgbench_branches RENAME TO branches" -c "ALTER TABLE pgbench_history RENAME TO history"
cat > "$OUT/tpcb.sql" <<'SQL'
\set aid random(1, 200000)
\set bid random(1, 2)
\set tid random(1, 20)
\set delta random(-5000, 5000)
BEGIN;
UPDATE accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM accounts WHERE aid = :aid;
UPDATE tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
SQL
pgbench_tps() { pgbench -n -c 4 -j 2 -T "$SECONDS_RUN" -f "$OUT/tpcb.sql" "$PG/ferry_capture" 2>/dev/null | awk '/^tps/ {print $3; exit}'; }
dir=$(mktemp -d)
a=$(pgbench_tps); b1=$(bulk_pg)
install_capture "$PG/ferry_capture" "$dir" accounts tellers branches
b=$(pgbench_tps); b2=$(bulk_pg)
remove_capture "$dir"
row "PostgreSQL pgbench TPC-B-like, -c 4 (tps)" "$a" "$b"
row_time "PostgreSQL bulk UPDATE of 200,000 rows" "$b1" "$b2"

echo "== MariaDB"
my -e "DROP DATABASE IF EXISTS ferry_capture; CREATE DATABASE ferry_capture"
my ferry_capture -e "CREATE TABLE accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
  CREATE TABLE tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
  CREATE TABLE branches (bid int PRIMARY KEY, bbalance int, filler char(88));
  CREATE TABLE history (tid int, bid int, aid int, delta int, mtime timestamp DEFAULT CURRENT_TIMESTAMP, filler char(22));
  INSERT INTO branches VALUES (1, 0, '');
  INSERT INTO tellers SELECT seq, 1, 0, '' FROM seq_1_to_10;
  INSERT INTO accounts SELECT seq, 1, 0, '' FROM seq_1_to_200000;"
dir=$(mktemp -d)
a=$("$PY" bench/writer.py mysql 127.0.0.1 ferry_capture "$SECONDS_RUN" 4); b1=$(bulk_my)
install_capture "mysql://root@127.0.0.1/ferry_capture" "$dir" accounts tellers branches
b=$("$PY" bench/writer.py mysql 127.0.0.1 ferry_capture "$SECONDS_RUN" 4); b2=$(bulk_my)
remove_capture "$dir"
row "MariaDB small transactions, 4 writers (tps)" "$a" "$b"
row_time "MariaDB bulk UPDATE of 200,000 rows" "$b1" "$b2"

echo "== SQLite"
dir=$(mktemp -d); db=$dir/source.db
sqlite3 "$db" "PRAGMA journal_mode = WAL;
  CREATE TABLE accounts (aid INTEGER PRIMARY KEY, bid INT, abalance INT, filler TEXT);
  CREATE TABLE tellers (tid INTEGER PRIMARY KEY, bid INT, tbalance INT, filler TEXT);
  CREATE TABLE branches (bid INTEGER PRIMARY KEY, bbalance INT, filler TEXT);
  CREATE TABLE history (tid INT, bid INT, aid INT, delta INT, mtime TEXT DEFAULT CURRENT_TIMESTAMP, filler TEXT);
  INSERT INTO branches VALUES (1, 0, '');
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) INSERT INTO tellers SELECT x, 1, 0, '' FROM c;
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) INSERT INTO accounts SELECT x, 1, 0, '' FROM c;" > /dev/null
a=$("$PY" bench/writer.py sqlite "$db" "$SECONDS_RUN" 4); b1=$(bulk_lite "$db")
install_capture "sqlite:$db" "$dir" accounts tellers branches
b=$("$PY" bench/writer.py sqlite "$db" "$SECONDS_RUN" 4); b2=$(bulk_lite "$db")
remove_capture "$dir"
row "SQLite small transactions, 4 writers (tps)" "$a" "$b"
row_time "SQLite bulk UPDATE of 200,000 rows" "$b1" "$b2"

{
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, ${SECONDS_RUN}s per throughput run."
    echo
    echo "| workload | without capture | with capture | with / without |"
    echo "|---|---|---|---|"
    printf '%s\n' "${results[@]}"
} | tee "$OUT/capture.md"
psql_admin -c "DROP DATABASE IF EXISTS ferry_capture WITH (FORCE)"
my -e "DROP DATABASE IF EXISTS ferry_capture"
