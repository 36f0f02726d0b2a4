#!/usr/bin/env bash
# One migration copied by several processes sharing a PostgreSQL state store,
# PostgreSQL -> PostgreSQL, measured in one run against the psql \copy binary pipe:
#   (1) `ferry run --until backfill` alone (workers = 1)
#   (2) the same beside one `ferry run --worker` (workers = 1 each): two processes
#   (3) as (2), the worker SIGKILLed a third of the way through; the runner finishes
# Every scenario ends with an independent comparison of source and target (row
# count and the sum of a hash of every row's text, computed by PostgreSQL, not
# by Ferry). On one machine both processes share its cores with both servers,
# so this measures the machinery (leases, takeover), not the hardware a second
# host adds.
#
#   bench/scale-out.sh [ROWS] [RUNS]     results: bench/out/scale-out.md
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${1:-2000000}
RUNS=${2:-1}
PG=${FERRY_TEST_PG:-postgres://postgres@127.0.0.1:5432}
OUT=bench/out
mkdir -p "$OUT"

cargo build --release -q -p ferry-cli
FERRY=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry

export PGOPTIONS="-c client_min_messages=warning"
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }
psql_db() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 "$PG/$db" "$@"; }
now() { date +%s.%N; }

echo "== preparing $ROWS rows"
for db in ferry_scale_src ferry_scale_dst ferry_scale_state; do
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
TABLE_DDL="(id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), created_at timestamptz NOT NULL, attrs jsonb)"
psql_db ferry_scale_src -c "CREATE TABLE items $TABLE_DDL" -c "
    INSERT INTO items
    SELECT g, 'item 🚀 ' || g || ' ' || md5(g::text), round((random() * 100000)::numeric, 2),
           timestamptz '2024-01-01' + g * interval '17 seconds',
           jsonb_build_object('n', g, 'tag', 'Zürich 🚀')
    FROM generate_series(1, $ROWS) g" -c "VACUUM ANALYZE items"

fingerprint() { psql_db "$1" -Atc "SELECT count(*) || ' ' || sum(hashtext(t::text)::bigint) FROM items t"; }
SOURCE_PRINT=$(fingerprint ferry_scale_src)

reset() {
    psql_db ferry_scale_dst -c "DROP TABLE IF EXISTS items" -c "DROP TABLE IF EXISTS ferry_checkpoint"
    psql_db ferry_scale_state -c "DROP SCHEMA IF EXISTS ferry_ferry CASCADE"
}

check_equal() {
    local print; print=$(fingerprint ferry_scale_dst)
    [ "$print" = "$SOURCE_PRINT" ] || { echo "target differs from source: $print vs $SOURCE_PRINT" >&2; exit 1; }
}

run_pipe() {
    reset
    psql_db ferry_scale_dst -c "CREATE TABLE items $TABLE_DDL"
    local t0; t0=$(now)
    psql_db ferry_scale_src -c "\copy items TO STDOUT (FORMAT binary)" | psql_db ferry_scale_dst -c "\copy items FROM STDIN (FORMAT binary)"
    echo "$(now) - $t0" | bc
    check_equal
}

spec_dir() {
    local dir; dir=$(mktemp -d)
    cat > "$dir/ferry.toml" <<TOML
[migration]
downtime = "0s"
rollback = "lossless"
owner = "bench@example.com"
[source]
url = "$PG/ferry_scale_src"
[target]
url = "$PG/ferry_scale_dst"
[state]
url = "$PG/ferry_scale_state"
[policy]
workers = 1
[[table]]
from = "items"
TOML
    echo "$dir"
}

copied() { # rows copied so far, from the shared state store
    "$FERRY" --spec "$1/ferry.toml" status --json 2>/dev/null \
        | python3 -c 'import json,sys; t=json.load(sys.stdin)["tables"]; print(t[0]["rows_copied"] if t else 0)' 2>/dev/null || echo 0
}

run_ferry() { # workers beside the runner: 0 or 1; kill: yes/no
    reset
    local dir; dir=$(spec_dir)
    local t0; t0=$(now)
    "$FERRY" --spec "$dir/ferry.toml" run --until backfill >"$dir/runner.out" 2>&1 &
    local runner=$!
    local worker=
    if [ "$1" = 1 ]; then
        "$FERRY" --spec "$dir/ferry.toml" run --worker >"$dir/worker.out" 2>&1 &
        worker=$!
    fi
    if [ "$2" = yes ]; then
        while [ "$(copied "$dir")" -lt $((ROWS / 3)) ]; do sleep 0.2; done
        kill -9 "$worker"
        wait "$worker" 2>/dev/null || true
        worker=
        echo "   (worker killed at $(copied "$dir") rows)" >&2
    fi
    wait "$runner" || { cat "$dir/runner.out" >&2; exit 1; }
    [ -z "$worker" ] || wait "$worker" || { cat "$dir/worker.out" >&2; exit 1; }
    echo "$(now) - $t0" | bc
    check_equal
    rm -rf "$dir"
}

declare -A took
add() { took[$1]="${took[$1]:-} $2"; }
for i in $(seq "$RUNS"); do
    echo "== round $i/$RUNS"
    t=$(run_pipe); add pipe "$t"; echo "   psql \\copy pipe                      ${t}s"
    t=$(run_ferry 0 no); add one "$t"; echo "   ferry run alone (1 process)          ${t}s"
    t=$(run_ferry 1 no); add two "$t"; echo "   ferry run + 1 --worker (2 processes) ${t}s"
    t=$(run_ferry 1 yes); add killed "$t"; echo "   ... worker SIGKILLed at 1/3          ${t}s"
done

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
med() { printf '%s\n' $1 | median; }
rate() { echo "$ROWS / $1" | bc; }
ratio() { printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"; }
m_pipe=$(med "${took[pipe]}")
secs() { printf '%.2f' "$1"; }
row() {
    local m; m=$(med "${took[$2]}")
    local all=""; for t in ${took[$2]}; do all="$all $(secs "$t")"; done
    echo "| $1 | $(secs "$m") s | $(rate "$m") | $(ratio "$m_pipe" "$m")x |$all |"
}
{
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; $ROWS rows, PostgreSQL -> PostgreSQL, state store in PostgreSQL, median of $RUNS run(s); each Ferry process with workers = 1; every scenario's target compared with the source (count and hash sum): equal."
    echo
    echo "| scenario | median wall time | rows/s | speed relative to the pipe | every run (s) |"
    echo "|---|---|---|---|---|"
    row "psql \\copy binary pipe" pipe
    row "ferry run --until backfill alone (1 process)" one
    row "ferry run + ferry run --worker (2 processes)" two
    row "2 processes, the worker SIGKILLed a third of the way; the runner takes its chunk over" killed
} | tee "$OUT/scale-out.md"

if [ -z "${KEEP:-}" ]; then
    for db in ferry_scale_src ferry_scale_dst ferry_scale_state; do psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done
fi
