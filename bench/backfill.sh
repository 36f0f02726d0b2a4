#!/usr/bin/env bash
# Backfill speed, measured against real peers in the same run:
#   (1) PostgreSQL -> PostgreSQL: Ferry vs. psql \copy (binary) piped into psql \copy
#   (2) MariaDB -> PostgreSQL:     Ferry vs. pgloader
# 1,000,000 rows of mixed columns (text with 4-byte UTF-8, numeric, timestamps, jsonb / json; on MariaDB also enum,
# int unsigned, datetime(6) and varbinary). Each tool runs RUNS times, alternating, into a fresh empty table; the
# median wall time is reported, with every run's figures. Ferry runs at its default settings, with the throttle off,
# with the old latency throttle, and with workers = 1, 2, 4 (the default is one per core, at most 4).
#
#   bench/backfill.sh [ROWS] [RUNS]      results: bench/out/backfill.md
#   KEEP=1 bench/backfill.sh             keep the databases for profiling
#
# Needs the servers scripts/test sets up; installs pgloader from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${1:-1000000}
RUNS=${2:-3}
PG=${FERRY_TEST_PG:-postgres://postgres@127.0.0.1:5432}
MY_HOST=127.0.0.1
OUT=bench/out
mkdir -p "$OUT"

command -v pgloader >/dev/null || { echo "installing pgloader"; apt-get install -y -qq pgloader >/dev/null; }
cargo build --release -q -p ferry-cli
FERRY=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }
psql_db() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 "$PG/$db" "$@"; }
my() { mariadb -h "$MY_HOST" -uroot "$@"; }

echo "== preparing $ROWS rows"
for db in ferry_bench_src ferry_bench_dst; do
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
TABLE_DDL="(id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), created_at timestamptz NOT NULL, active boolean NOT NULL, score double precision, attrs jsonb)"
psql_db ferry_bench_src -c "CREATE TABLE items $TABLE_DDL" -c "
    INSERT INTO items
    SELECT g, 'item 🚀 ' || g || ' ' || md5(g::text), round((random() * 100000)::numeric, 2),
           timestamptz '2024-01-01' + g * interval '17 seconds', g % 3 = 0,
           CASE WHEN g % 10 = 0 THEN NULL ELSE random() * 1000 END,
           jsonb_build_object('n', g, 'tag', 'Zürich 🚀', 'list', jsonb_build_array(g, g * 2, md5(g::text)))
    FROM generate_series(1, $ROWS) g" -c "VACUUM ANALYZE items"

my -e "DROP DATABASE IF EXISTS ferry_bench; CREATE DATABASE ferry_bench CHARACTER SET utf8mb4"
my ferry_bench -e "CREATE TABLE items (id bigint PRIMARY KEY, name longtext NOT NULL, amount decimal(12,2),
    created_at datetime(6) NOT NULL, active tinyint(1) NOT NULL, score double, attrs json,
    status enum('new', 'paid', 'shipped') NOT NULL, qty int unsigned NOT NULL, digest varbinary(16) NOT NULL)"
psql_db ferry_bench_src -c "\copy (SELECT id, name, amount, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), active::int, score, attrs::text FROM items ORDER BY id) TO '$PWD/$OUT/items.tsv'"
my --local-infile=1 ferry_bench -e "LOAD DATA LOCAL INFILE '$PWD/$OUT/items.tsv' INTO TABLE items
    FIELDS TERMINATED BY '\t' LINES TERMINATED BY '\n' (id, name, @amount, created_at, active, @score, attrs)
    SET amount = NULLIF(@amount, '\\\\N'), score = NULLIF(@score, '\\\\N'),
        status = ELT(1 + id % 3, 'new', 'paid', 'shipped'), qty = 4000000000 - id, digest = UNHEX(MD5(id));
    ANALYZE TABLE items" >/dev/null
rm -f "$OUT/items.tsv"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

reset_pg_target() {
    psql_db ferry_bench_dst -c "DROP TABLE IF EXISTS items" -c "DROP SCHEMA IF EXISTS ferry_bench CASCADE"
}

run_pipe() {
    reset_pg_target
    psql_db ferry_bench_dst -c "CREATE TABLE items $TABLE_DDL"
    local t0; t0=$(now)
    psql_db ferry_bench_src -c "\copy items TO STDOUT (FORMAT binary)" | psql_db ferry_bench_dst -c "\copy items FROM STDIN (FORMAT binary)"
    echo "$(now) - $t0" | bc
}

run_ferry() { # source url, [policy] lines
    reset_pg_target
    local dir; dir=$(mktemp -d)
    cat > "$dir/ferry.toml" <<TOML
[migration]
downtime = "0s"
rollback = "lossless"
owner = "bench@example.com"
[source]
url = "$1"
[target]
url = "$PG/ferry_bench_dst"
[policy]
$2
[[table]]
from = "items"
TOML
    local t0; t0=$(now)
    "$FERRY" --spec "$dir/ferry.toml" run --until backfill >/dev/null 2>"$dir/err" || { cat "$dir/err" >&2; exit 1; }
    local t; t=$(echo "$(now) - $t0" | bc)
    local n; n=$(psql_db ferry_bench_dst -Atc "SELECT count(*) FROM items")
    [ "$n" = "$ROWS" ] || { echo "ferry copied $n rows, expected $ROWS" >&2; exit 1; }
    rm -rf "$dir"
    echo "$t"
}

run_pgloader() {
    reset_pg_target
    local dir; dir=$(mktemp -d)
    cat > "$dir/load" <<LOAD
LOAD DATABASE
    FROM mysql://root@$MY_HOST/ferry_bench
    INTO $PG/ferry_bench_dst
WITH include drop, create tables, create indexes, workers = 2, concurrency = 1, batch rows = 10000
INCLUDING ONLY TABLE NAMES MATCHING 'items';
LOAD
    local t0; t0=$(now)
    pgloader --quiet "$dir/load" >"$dir/log" 2>&1 || { cat "$dir/log" >&2; exit 1; }
    local t; t=$(echo "$(now) - $t0" | bc)
    local n; n=$(psql_db ferry_bench_dst -Atc "SELECT count(*) FROM ferry_bench.items" 2>/dev/null || psql_db ferry_bench_dst -Atc "SELECT count(*) FROM items")
    [ "$n" = "$ROWS" ] || { echo "pgloader copied $n rows, expected $ROWS" >&2; cat "$dir/log" >&2; exit 1; }
    rm -rf "$dir"
    echo "$t"
}

# Ferry at the default settings (the throttle paces by the source's load, one
# worker per core up to 4), with the throttle off, with the latency probe that
# was the default until the load pace, and with 1, 2 and 4 workers.
declare -A LABEL=(
    [default]="default settings"
    [off]='throttle = "off"'
    [latency]='throttle = "latency", the old default'
    [w1]="workers = 1" [w2]="workers = 2" [w4]="workers = 4"
)
declare -A POLICY=([default]="" [off]='throttle = "off"' [latency]='throttle = "latency"'
    [w1]="workers = 1" [w2]="workers = 2" [w4]="workers = 4")
VARIANTS=(default off latency w1 w2 w4)
declare -A took
add() { took[$1]="${took[$1]:-} $2"; }
for i in $(seq "$RUNS"); do
    echo "== round $i/$RUNS"
    t=$(run_pipe); add pipe "$t"; echo "   psql \\copy pipe             ${t}s"
    for v in "${VARIANTS[@]}"; do
        t=$(run_ferry "$PG/ferry_bench_src" "${POLICY[$v]}"); add "pg_$v" "$t"; echo "   ferry PG->PG $v       ${t}s"
    done
    t=$(run_pgloader); add pgl "$t"; echo "   pgloader MariaDB->PG          ${t}s"
    for v in "${VARIANTS[@]}"; do
        t=$(run_ferry "mysql://root@$MY_HOST/ferry_bench" "${POLICY[$v]}"); add "my_$v" "$t"; echo "   ferry MariaDB->PG $v  ${t}s"
    done
done

med() { printf '%s\n' $1 | median; }
rate() { echo "$ROWS / $1" | bc; }
ratio() { printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"; }
row() { echo "| $1 | $2 | ${3}s | $(rate "$3") | ${4:+$(ratio "$4" "$3")x} | $5 |"; }
m_pipe=$(med "${took[pipe]}"); m_pgl=$(med "${took[pgl]}")

{
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; $ROWS rows, median of $RUNS runs; PostgreSQL $(psql_admin -Atc 'show server_version'), MariaDB $(my -N -e 'select version()')."
    echo
    echo "| comparison | tool | median wall time | rows/s | Ferry speed relative to peer | every run (s) |"
    echo "|---|---|---|---|---|---|"
    row "PG -> PG" "psql \\copy binary pipe" "$m_pipe" "" "${took[pipe]}"
    for v in "${VARIANTS[@]}"; do
        row "PG -> PG" "ferry run --until backfill (${LABEL[$v]})" "$(med "${took[pg_$v]}")" "$m_pipe" "${took[pg_$v]}"
    done
    row "MariaDB -> PG" "pgloader (workers 2, concurrency 1, batch rows 10000)" "$m_pgl" "" "${took[pgl]}"
    for v in "${VARIANTS[@]}"; do
        row "MariaDB -> PG" "ferry run --until backfill (${LABEL[$v]})" "$(med "${took[my_$v]}")" "$m_pgl" "${took[my_$v]}"
    done
} | tee "$OUT/backfill.md"

if [ -z "${KEEP:-}" ]; then
    psql_admin -c "DROP DATABASE IF EXISTS ferry_bench_src WITH (FORCE)" -c "DROP DATABASE IF EXISTS ferry_bench_dst WITH (FORCE)"
    my -e "DROP DATABASE IF EXISTS ferry_bench"
fi
