#!/usr/bin/env bash
# Adding an index to a live table: how long an application's writes wait.
#
# For each engine, a table of ROWS rows (default 1,000,000) gets an index on
# a text column while an application writer (bench/index_writer.py) updates
# one random row RATE times a second (default 200). Twice, on a fresh table:
# the peer is the engine's plain build (PostgreSQL `CREATE INDEX`, MariaDB
# `ALTER TABLE … ADD INDEX, ALGORITHM=COPY`, SQLite `CREATE INDEX`), then
# Ferry's `[[change]] add_index` through `ferry run` (PostgreSQL
# `CREATE INDEX CONCURRENTLY`, MariaDB `ALGORITHM=INPLACE, LOCK=NONE`, SQLite
# the same plain build: it has no online one). Reported: the build's wall
# time, and the longest a single write waited (due → acknowledged) while the
# writer ran, against Ferry's lock timeout (2 s).
#
#   bench/index.sh [ROWS] [RATE]     results: bench/out/index.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
RATE=${2:-200}
. bench/lib.sh
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# fill KIND: a fresh `items` table of ROWS rows; sets URL and WHERE
fill() {
    case $1 in
    postgres)
        psql -X -q "$PG/postgres" -c "DROP DATABASE IF EXISTS ferry_bench_index" -c "CREATE DATABASE ferry_bench_index"
        psql -X -q "$PG/ferry_bench_index" -c "CREATE TABLE items (id bigint PRIMARY KEY, n integer NOT NULL, note varchar(40));
            INSERT INTO items SELECT g, 0, md5(g::text) FROM generate_series(1, $ROWS) g; ANALYZE items;"
        URL="$PG/ferry_bench_index"; WHERE=$URL ;;
    mysql)
        mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS ferry_bench_index; CREATE DATABASE ferry_bench_index; USE ferry_bench_index;
            CREATE TABLE ferry_bench_index.items (id bigint PRIMARY KEY, n integer NOT NULL, note varchar(40));
            INSERT INTO ferry_bench_index.items SELECT seq, 0, md5(seq) FROM seq_1_to_$ROWS;"
        URL="mysql://root@127.0.0.1:3306/ferry_bench_index"; WHERE="127.0.0.1:3306/ferry_bench_index" ;;
    sqlite)
        rm -f "$WORK/items.db"
        sqlite3 "$WORK/items.db" "PRAGMA journal_mode = WAL; CREATE TABLE items (id INTEGER PRIMARY KEY, n integer NOT NULL, note varchar(40));
            WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $ROWS) INSERT INTO items SELECT i, 0, hex(randomblob(16)) FROM s;" >/dev/null
        URL="sqlite:$WORK/items.db"; WHERE="$WORK/items.db" ;;
    esac
}

plain_build() {
    case $1 in
    postgres) psql -X -q "$URL" -c "CREATE INDEX items_note_idx ON items (note)" ;;
    mysql) mariadb -h 127.0.0.1 -uroot ferry_bench_index -e "ALTER TABLE items ADD INDEX items_note_idx (note), ALGORITHM=COPY" ;;
    sqlite) sqlite3 "$WHERE" "PRAGMA busy_timeout = 60000; CREATE INDEX items_note_idx ON items (note)" >/dev/null ;;
    esac
}

ferry_build() {
    cat > "$WORK/index.toml" <<SPEC
[migration]
downtime = "0s"
rollback = "lossless"
owner = "bench"

[source]
url = "$URL"

[state]
url = "sqlite:$WORK/state-$1.db"

[[change]]
table = "items"
add_index = "items_note_idx"
columns = ["note"]
SPEC
    rm -f "$WORK/state-$1.db"
    "$FERRY" --spec "$WORK/index.toml" run --until expand >/dev/null 2>&1
}

# measure KIND BUILD: the writer runs 2 s before the build and 2 s after it; prints "seconds|writer json"
measure() {
    local kind=$1 build=$2
    fill "$kind"
    rm -f "$WORK/stop"
    "$PY" bench/index_writer.py "$kind" "$WHERE" "$ROWS" "$RATE" "$WORK/stop" > "$WORK/writer.json" &
    local writer=$!
    sleep 2
    local t0; t0=$(now)
    "$build" "$kind"
    local took; took=$(echo "$(now) - $t0" | bc)
    sleep 2
    touch "$WORK/stop"
    wait $writer
    echo "$took|$(cat "$WORK/writer.json")"
}

field() { "$PY" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

{
    echo "Run $(date -u +%Y-%m-%d) on $(nproc) cores; $ROWS rows, a writer updating one random row $RATE times a second."
    echo
    echo "| engine | build | build time | longest wait of a write | writes |"
    echo "|---|---|---|---|---|"
    for kind in postgres mysql sqlite; do
        for build in plain_build ferry_build; do
            result=$(measure "$kind" "$build")
            took=${result%%|*}; json=${result#*|}
            label=$([ "$build" = plain_build ] && echo "plain (peer)" || echo "ferry add_index")
            printf '| %s | %s | %.2f s | %s ms | %s |\n' "$kind" "$label" "$took" "$(field "$json" worst_wait_ms)" "$(field "$json" writes)"
        done
    done
} | tee "$OUT/index.md"
