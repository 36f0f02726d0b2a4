#!/usr/bin/env bash
# Backfill speed, measured against real peers in the same run:
#   (1) PostgreSQL -> PostgreSQL: Ferry vs. psql \copy (binary) piped into psql \copy
#   (2) MariaDB -> PostgreSQL:     Ferry vs. pgloader
# 1,000,000 rows of 6 mixed columns. Each tool runs RUNS times, alternating,
# into a fresh empty table; the median wall time is reported.
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
FERRY=$PWD/target/release/ferry

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }
psql_db() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 "$PG/$db" "$@"; }
my() { mariadb -h "$MY_HOST" -uroot "$@"; }

echo "== preparing $ROWS rows"
for db in ferry_bench_src ferry_bench_dst; do
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
TABLE_DDL="(id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), created_at timestamptz NOT NULL, active boolean NOT NULL, score double precision)"
psql_db ferry_bench_src -c "CREATE TABLE items $TABLE_DDL" -c "
    INSERT INTO items
    SELECT g, 'item ' || g || ' ' || md5(g::text), round((random() * 100000)::numeric, 2),
           timestamptz '2024-01-01' + g * interval '17 seconds', g % 3 = 0,
           CASE WHEN g % 10 = 0 THEN NULL ELSE random() * 1000 END
    FROM generate_series(1, $ROWS) g" -c "VACUUM ANALYZE items"

my -e "DROP DATABASE IF EXISTS ferry_bench; CREATE DATABASE ferry_bench CHARACTER SET utf8mb4"
my ferry_bench -e "CREATE TABLE items (id bigint PRIMARY KEY, name longtext NOT NULL, amount decimal(12,2),
    created_at datetime(6) NOT NULL, active tinyint(1) NOT NULL, score double)"
psql_db ferry_bench_src -c "\copy (SELECT id, name, amount, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), active::int, score FROM items ORDER BY id) TO '$PWD/$OUT/items.tsv'"
my --local-infile=1 ferry_bench -e "LOAD DATA LOCAL INFILE '$PWD/$OUT/items.tsv' INTO TABLE items
    FIELDS TERMINATED BY '\t' LINES TERMINATED BY '\n' (id, name, @amount, created_at, active, @score)
    SET amount = NULLIF(@amount, '\\\\N'), score = NULLIF(@score, '\\\\N'); ANALYZE TABLE items" >/dev/null
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

run_ferry() { # source url, batch size
    reset_pg_target
    local dir; dir=$(mktemp -d)
    cat > "$dir/ferry.toml" <<TOML
[source]
url = "$1"
[target]
url = "$PG/ferry_bench_dst"
[policy]
batch_size = $2
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

# Ferry at its default batch size (5000), and with batch_size = 20000.
declare -a pipe ferry_pg ferry_pg20 ferry_my ferry_my20 pgl
for i in $(seq "$RUNS"); do
    echo "== round $i/$RUNS"
    pipe+=("$(run_pipe)");        echo "   psql \\copy pipe       ${pipe[-1]}s"
    ferry_pg+=("$(run_ferry "$PG/ferry_bench_src" 5000)"); echo "   ferry PG->PG           ${ferry_pg[-1]}s"
    ferry_pg20+=("$(run_ferry "$PG/ferry_bench_src" 20000)"); echo "   ferry PG->PG 20000     ${ferry_pg20[-1]}s"
    pgl+=("$(run_pgloader)");     echo "   pgloader MySQL->PG     ${pgl[-1]}s"
    ferry_my+=("$(run_ferry "mysql://root@$MY_HOST/ferry_bench" 5000)"); echo "   ferry MySQL->PG        ${ferry_my[-1]}s"
    ferry_my20+=("$(run_ferry "mysql://root@$MY_HOST/ferry_bench" 20000)"); echo "   ferry MySQL->PG 20000  ${ferry_my20[-1]}s"
done

m_pipe=$(printf '%s\n' "${pipe[@]}" | median)
m_fpg=$(printf '%s\n' "${ferry_pg[@]}" | median)
m_fpg20=$(printf '%s\n' "${ferry_pg20[@]}" | median)
m_pgl=$(printf '%s\n' "${pgl[@]}" | median)
m_fmy=$(printf '%s\n' "${ferry_my[@]}" | median)
m_fmy20=$(printf '%s\n' "${ferry_my20[@]}" | median)
rate() { echo "$ROWS / $1" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }

{
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; $ROWS rows, median of $RUNS runs; PostgreSQL $(psql_admin -Atc 'show server_version'), MariaDB $(my -N -e 'select version()')."
    echo
    echo "| comparison | tool | median wall time | rows/s | Ferry speed relative to peer |"
    echo "|---|---|---|---|---|"
    echo "| PG -> PG | psql \\copy binary pipe | ${m_pipe}s | $(rate "$m_pipe") | |"
    echo "| PG -> PG | ferry run --until backfill (batch_size 5000, the default) | ${m_fpg}s | $(rate "$m_fpg") | $(ratio "$m_pipe" "$m_fpg")x |"
    echo "| PG -> PG | ferry run --until backfill (batch_size 20000) | ${m_fpg20}s | $(rate "$m_fpg20") | $(ratio "$m_pipe" "$m_fpg20")x |"
    echo "| MariaDB -> PG | pgloader (workers 2, concurrency 1, batch rows 10000) | ${m_pgl}s | $(rate "$m_pgl") | |"
    echo "| MariaDB -> PG | ferry run --until backfill (batch_size 5000, the default) | ${m_fmy}s | $(rate "$m_fmy") | $(ratio "$m_pgl" "$m_fmy")x |"
    echo "| MariaDB -> PG | ferry run --until backfill (batch_size 20000) | ${m_fmy20}s | $(rate "$m_fmy20") | $(ratio "$m_pgl" "$m_fmy20")x |"
    echo
    echo "Every run (seconds): pipe ${pipe[*]}; ferry PG ${ferry_pg[*]}; ferry PG 20000 ${ferry_pg20[*]}; pgloader ${pgl[*]}; ferry MariaDB ${ferry_my[*]}; ferry MariaDB 20000 ${ferry_my20[*]}."
} | tee "$OUT/backfill.md"

if [ -z "${KEEP:-}" ]; then
    psql_admin -c "DROP DATABASE IF EXISTS ferry_bench_src WITH (FORCE)" -c "DROP DATABASE IF EXISTS ferry_bench_dst WITH (FORCE)"
    my -e "DROP DATABASE IF EXISTS ferry_bench"
fi
