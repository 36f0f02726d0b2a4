#!/usr/bin/env bash
# Change-capture overhead: source write throughput with Ferry's capture
# installed against without, in the same run; on PostgreSQL both methods
# (triggers, logical decoding).
#   (a) small transactions: pgbench (TPC-B-like, -c 4 -T 30) on PostgreSQL; the
#       same transaction mix from bench/writer.py (4 threads, 30 s) on MariaDB and SQLite
#   (b) one bulk UPDATE of 200,000 rows on each engine
#
# The machine's speed drifts by tens of percent from minute to minute, so each
# engine is measured in ROUNDS rounds, without and with capture in turn (the
# order rotated every round), and the median of the rounds' ratios is
# reported with their range.
#
#   bench/capture.sh [SECONDS] [ROUNDS]      results: bench/out/capture.md
#   ENGINES="postgres mariadb sqlite" (the default) chooses which engines run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-30}
ROUNDS=${2:-3}
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
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Capture as a migration runs it: `ferry run --until expand` installs it,
# and `ferry sync --follow` runs beside the workload. No table is backfilled,
# so nothing is replayed: for triggers the follower has nothing to do, and
# for logical capture it does what capture costs, moving the decoded changes
# from the slot into the change log every round. Replay is left out for both
# methods: it is the same work whichever method captured the keys, and it
# runs on Ferry's host, not in the source's transactions.
SYNC_PID=
start_capture() { # method source-url dir tables...
    local method=$1 url=$2 dir=$3; shift 3
    { printf '[migration]\ndowntime = "0s"\nrollback = "lossless"\nowner = "bench"\n[source]\nurl = "%s"\n' "$url"
      if [ "$method" != triggers ]; then printf 'capture = "%s"\n' "$method"; fi
      printf '[target]\nurl = "sqlite:target.db"\n'
      for t in "$@"; do printf '[[table]]\nfrom = "%s"\n' "$t"; done; } > "$dir/ferry.toml"
    "$FERRY" --spec "$dir/ferry.toml" run --until expand > "$dir/run.log" 2>&1 || { cat "$dir/run.log"; exit 1; }
    "$FERRY" --spec "$dir/ferry.toml" sync --follow > "$dir/sync.log" 2>&1 &
    SYNC_PID=$!
}
stop_capture() { # dir
    kill -TERM "$SYNC_PID"; wait "$SYNC_PID" || true
    "$FERRY" --spec "$1/ferry.toml" rollback > /dev/null
}
PGDIR= MYPID= MYDIR=
cleanup() {
    if [ -n "$SYNC_PID" ]; then kill "$SYNC_PID" 2>/dev/null || true; fi
    if [ -n "$PGDIR" ]; then as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop > /dev/null || true; rm -rf "$PGDIR"; fi
    if [ -n "$MYPID" ]; then kill "$MYPID" 2>/dev/null || true; wait "$MYPID" 2>/dev/null || true; rm -rf "$MYDIR"; fi
}
trap cleanup EXIT

bulk_pg() { local t0; t0=$(now); psql -X -q "$PG/ferry_capture" -c "UPDATE accounts SET abalance = abalance + 1 WHERE aid <= 200000"; echo "$(now) - $t0" | bc; }
bulk_my() { local t0; t0=$(now); my ferry_capture -e "UPDATE accounts SET abalance = abalance + 1 WHERE aid <= 200000"; echo "$(now) - $t0" | bc; }
bulk_lite() { local t0; t0=$(now); sqlite3 "$1" "UPDATE accounts SET abalance = abalance + 1 WHERE aid <= 200000"; echo "$(now) - $t0" | bc; }

results=()
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
range() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}'; }
# rounds NAME UNIT: reads "without with" pairs on stdin (UNIT tps: higher is better; s: lower is better)
rounds() {
    local name=$1 unit=$2 pairs ratios
    pairs=$(cat)
    if [ "$unit" = tps ]; then ratios=$(awk '{printf "%.4f\n", $2 / $1}' <<< "$pairs")
    else ratios=$(awk '{printf "%.4f\n", $1 / $2}' <<< "$pairs"); fi
    results+=("| $name | $(cut -d' ' -f1 <<< "$pairs" | median) $unit | $(cut -d' ' -f2 <<< "$pairs" | median) $unit | $(median <<< "$ratios" | xargs printf '%.2f')x | $(range <<< "$ratios") |")
    echo "$name: rounds (without with):" $pairs
}
# measure_engine "METHODS" SOURCE-URL DIR TABLES...: ROUNDS rounds of $throughput
# and $bulk without capture and with each method, the order rotated every round
measure_engine() {
    local methods=$1 r m order i tp bk a b
    shift
    declare -A tps secs
    local variants=(none $methods)
    for r in $(seq "$ROUNDS"); do
        order=("${variants[@]:$(( (r - 1) % ${#variants[@]} ))}" "${variants[@]:0:$(( (r - 1) % ${#variants[@]} ))}")
        for m in "${order[@]}"; do
            if [ "$m" = none ]; then
                tp=$($throughput); bk=$($bulk)
            else
                start_capture "$m" "$@"; tp=$($throughput); bk=$($bulk); stop_capture "$2"
            fi
            echo "round $r, $m: $tp tps, bulk $bk s"
            tps[$m]+="$tp "; secs[$m]+="$bk "
        done
    done
    for m in $methods; do
        read -ra a <<< "${tps[none]}"; read -ra b <<< "${tps[$m]}"
        rounds "$small, $m" tps < <(for i in "${!a[@]}"; do echo "${a[$i]} ${b[$i]}"; done)
        read -ra a <<< "${secs[none]}"; read -ra b <<< "${secs[$m]}"
        rounds "$big, $m" s < <(for i in "${!a[@]}"; do echo "${a[$i]} ${b[$i]}"; done)
    done
}

ENGINES=${ENGINES:-postgres mariadb sqlite}
wants() { [[ " $ENGINES " == *" $1 "* ]]; }

if wants postgres; then
echo "== PostgreSQL"
# Logical capture needs wal_level = logical, a restart away on a shared server:
# the PostgreSQL runs use a server of their own (initdb's defaults, fsync on)
# with wal_level = logical, for all three variants alike.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDIR=$(mktemp -d)
[ "$(id -u)" = 0 ] && chown postgres: "$PGDIR"
PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 > /dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
    -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c wal_level=logical" start > /dev/null
PG=postgres://postgres@127.0.0.1:$PGPORT
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
throughput=pgbench_tps bulk=bulk_pg small="PostgreSQL pgbench TPC-B-like, -c 4" big="PostgreSQL bulk UPDATE of 200,000 rows" \
    measure_engine "triggers logical" "$PG/ferry_capture" "$(mktemp -d)" accounts tellers branches

fi

if wants mariadb; then
echo "== MariaDB"
# Binlog capture needs a row-based binary log, a restart away on a shared
# server: the MariaDB runs use a server of their own with log_bin and
# binlog_format = ROW, for all three variants alike.
MYDIR=$(mktemp -d)
MYPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MYUSER=(); [ "$(id -u)" = 0 ] && MYUSER=(--user=root)
mariadb-install-db --no-defaults --datadir="$MYDIR/data" --auth-root-authentication-method=normal "${MYUSER[@]}" > /dev/null
/usr/sbin/mariadbd --no-defaults "${MYUSER[@]}" --datadir="$MYDIR/data" --port="$MYPORT" --socket="$MYDIR/sock" \
    --pid-file="$MYDIR/pid" --log-bin="$MYDIR/bin" --server-id=1 --binlog-format=ROW --bind-address=127.0.0.1 \
    --skip-name-resolve > "$MYDIR/server.log" 2>&1 &
MYPID=$!
for _ in $(seq 100); do mariadb -h 127.0.0.1 -P "$MYPORT" -uroot -e 'SELECT 1' > /dev/null 2>&1 && break; sleep 0.2; done
my() { mariadb -h 127.0.0.1 -P "$MYPORT" -uroot "$@"; }
my -e "DROP DATABASE IF EXISTS ferry_capture; CREATE DATABASE ferry_capture"
my ferry_capture -e "CREATE TABLE accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
  CREATE TABLE tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
  CREATE TABLE branches (bid int PRIMARY KEY, bbalance int, filler char(88));
  CREATE TABLE history (tid int, bid int, aid int, delta int, mtime timestamp DEFAULT CURRENT_TIMESTAMP, filler char(22));
  INSERT INTO branches VALUES (1, 0, '');
  INSERT INTO tellers SELECT seq, 1, 0, '' FROM seq_1_to_10;
  INSERT INTO accounts SELECT seq, 1, 0, '' FROM seq_1_to_200000;"
writer_my() { "$PY" bench/writer.py mysql "127.0.0.1:$MYPORT" ferry_capture "$SECONDS_RUN" 4; }
throughput=writer_my bulk=bulk_my small="MariaDB small transactions, 4 writers" big="MariaDB bulk UPDATE of 200,000 rows" \
    measure_engine "triggers binlog" "mysql://root@127.0.0.1:$MYPORT/ferry_capture" "$(mktemp -d)" accounts tellers branches
my -e "DROP DATABASE IF EXISTS ferry_capture"
fi

if wants sqlite; then
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
writer_lite() { "$PY" bench/writer.py sqlite "$db" "$SECONDS_RUN" 4; }
bulk_lite_db() { bulk_lite "$db"; }
throughput=writer_lite bulk=bulk_lite_db small="SQLite small transactions, 4 writers" big="SQLite bulk UPDATE of 200,000 rows" \
    measure_engine triggers "sqlite:$db" "$dir" accounts tellers branches

fi

{
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, ${SECONDS_RUN}s per throughput run, $ROUNDS rounds (medians)."
    echo
    echo "| workload | without capture | with capture | with / without | range over rounds |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${results[@]}"
} | tee "$OUT/capture.md"
