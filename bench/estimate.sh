#!/usr/bin/env bash
# How well `ferry plan` estimates `ferry run`: on four scenarios (PostgreSQL ->
# PostgreSQL, MariaDB -> PostgreSQL, PostgreSQL -> MariaDB, SQLite ->
# PostgreSQL) of ROWS rows each (a table with text holding 4-byte UTF-8,
# numeric, a timestamp, json and a secondary index), on two plan fixtures'
# shapes (a foreign key chain; an in-place change), `ferry plan`, then
# `ferry run` at the default settings; and the demo's SQLite files and spec,
# planned and run as a user would after `ferry demo --dir`. The run's
# `estimate-checked` audit line holds the plan's estimate with its range, the
# run's time, and both per phase. Goal: estimate / actual within 0.8 - 1.25
# for each.
#
#   bench/estimate.sh [ROWS]      results: bench/out/estimate.md
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${1:-300000}
PG=${FERRY_TEST_PG:-postgres://postgres@127.0.0.1:5432}
MY_HOST=127.0.0.1
OUT=bench/out
mkdir -p "$OUT"
cargo build --release -q -p ferry-cli
FERRY=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }
psql_db() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 "$PG/$db" "$@"; }
my() { mariadb --default-character-set=utf8mb4 -h "$MY_HOST" -uroot "$@"; }

echo "== preparing $ROWS rows on each engine"
for db in ferry_est_src ferry_est_dst; do
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
psql_db ferry_est_src -c "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2),
        created_at timestamptz NOT NULL, attrs jsonb, owner integer NOT NULL)" -c "
    INSERT INTO items SELECT g, 'item 🚀 ' || g || ' ' || md5(g::text), round((random() * 100000)::numeric, 2),
           timestamptz '2024-01-01' + g * interval '17 seconds',
           jsonb_build_object('n', g, 'tag', 'Zürich 🚀'), g % 5000
    FROM generate_series(1, $ROWS) g" -c "CREATE INDEX items_owner ON items (owner)" -c "VACUUM ANALYZE items"
my -e "DROP DATABASE IF EXISTS ferry_est_src; CREATE DATABASE ferry_est_src CHARACTER SET utf8mb4;
       DROP DATABASE IF EXISTS ferry_est_dst; CREATE DATABASE ferry_est_dst CHARACTER SET utf8mb4"
my ferry_est_src -e "CREATE TABLE items (id bigint PRIMARY KEY, name varchar(200) NOT NULL, amount decimal(12,2),
        created_at datetime(6) NOT NULL, attrs json, owner int NOT NULL, KEY items_owner (owner));
    INSERT INTO items SELECT seq, CONCAT('item 🚀 ', seq, ' ', MD5(seq)), ROUND(RAND() * 100000, 2),
        TIMESTAMPADD(SECOND, seq * 17, '2024-01-01'), JSON_OBJECT('n', seq, 'tag', 'Zürich 🚀'), seq % 5000
    FROM seq_1_to_$ROWS; ANALYZE TABLE items" >/dev/null
sqlite3 "$WORK/source.db" "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount NUMERIC(12,2),
        created_at TEXT NOT NULL, attrs TEXT, owner INTEGER NOT NULL);
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $ROWS)
    INSERT INTO items SELECT n, 'item 🚀 ' || n, round(abs(random() % 10000000) / 100.0, 2),
        datetime('2024-01-01', '+' || (n * 17) || ' seconds'), json_object('n', n, 'tag', 'Zürich 🚀'), n % 5000 FROM g;
    CREATE INDEX items_owner ON items (owner); ANALYZE;"

reset_targets() {
    psql_db ferry_est_dst -c "DROP TABLE IF EXISTS items" -c "DROP TABLE IF EXISTS ferry_checkpoint"
    my ferry_est_dst -e "DROP TABLE IF EXISTS items; DROP TABLE IF EXISTS ferry_checkpoint"
}

# Plans and runs the spec in a directory; prints "estimate_s low_s high_s actual_s by_phase".
plan_and_run() { # name, dir
    local dir=$2
    (cd "$dir" && "$FERRY" plan >/dev/null 2>plan.err) || true
    (cd "$dir" && "$FERRY" run >/dev/null 2>run.err) || { cat "$dir/run.err" >&2; exit 1; }
    local line
    line=$(grep -h "estimate-checked" "$dir"/.ferry/*/audit.log | tail -1)
    [ -n "$line" ] || { echo "$1: no estimate-checked line in the audit log" >&2; exit 1; }
    local field
    field() { echo "$line" | sed -E "s/.*$1=([0-9]+).*/\\1/"; }
    printf '%s %s %s %s %s\n' "$(secs "$(field estimated_ms)")" "$(secs "$(field low_ms)")" "$(secs "$(field high_ms)")" \
        "$(secs "$(field actual_ms)")" "$(echo "$line" | sed -E 's/.*by_phase="([^"]*)".*/\1/' | tr ' ' '_')"
}

secs() { echo "scale=2; $1 / 1000" | bc | sed 's/^\./0./'; }

# One scenario's spec on `items`; prints what plan_and_run prints.
scenario() { # name, source url, target url
    reset_targets
    local dir="$WORK/$1"
    mkdir -p "$dir"
    cat > "$dir/ferry.toml" <<TOML
[migration]
downtime = "0s"
rollback = "lossless"
owner = "bench@example.com"
[source]
url = "$2"
[target]
url = "$3"
[[table]]
from = "items"
TOML
    plan_and_run "$1" "$dir"
}

# The plan fixtures' shapes at ROWS rows: sessions referencing users (a
# foreign key validated after the data, a unique token, an index) PG -> PG,
# and an in-place change (a computed NOT NULL column) on PostgreSQL.
fixtures() {
    psql_admin -c "DROP DATABASE IF EXISTS ferry_est_fk WITH (FORCE)" -c "CREATE DATABASE ferry_est_fk" \
        -c "DROP DATABASE IF EXISTS ferry_est_ip WITH (FORCE)" -c "CREATE DATABASE ferry_est_ip"
    psql_db ferry_est_fk -c "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
        CREATE TABLE sessions (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id),
            token varchar(64) NOT NULL UNIQUE, created_at timestamptz NOT NULL, revoked boolean NOT NULL DEFAULT false);
        CREATE INDEX sessions_user_id ON sessions (user_id)" -c "
        INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, $ROWS / 10) g" -c "
        INSERT INTO sessions SELECT g, (g % ($ROWS / 10)) + 1, md5(g::text), timestamptz '2026-01-01' + g * interval '1 minute',
            g % 10 = 0 FROM generate_series(1, $ROWS) g" -c "VACUUM ANALYZE"
    psql_db ferry_est_ip -c "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, verification_date timestamptz)" -c "
        INSERT INTO users SELECT g, 'u' || g || '@example.com',
            CASE WHEN g % 4 = 0 THEN NULL ELSE timestamptz '2025-01-01' + g * interval '1 hour' END
        FROM generate_series(1, $ROWS) g" -c "VACUUM ANALYZE users"
}

fixture_fk() {
    psql_db ferry_est_dst -c "DROP TABLE IF EXISTS sessions, users, ferry_checkpoint"
    mkdir -p "$WORK/fk"
    cat > "$WORK/fk/ferry.toml" <<TOML
[migration]
downtime = "0s"
rollback = "lossless"
owner = "bench@example.com"
[source]
url = "$PG/ferry_est_fk"
[target]
url = "$PG/ferry_est_dst"
[[table]]
from = "users"
[[table]]
from = "sessions"
TOML
    plan_and_run fk "$WORK/fk"
}

fixture_in_place() {
    mkdir -p "$WORK/ip"
    cat > "$WORK/ip/ferry.toml" <<TOML
[migration]
downtime = "0s"
rollback = "lossless"
owner = "bench@example.com"
[source]
url = "$PG/ferry_est_ip"
[target]
url = "$PG/ferry_est_ip"
[[table]]
from = "users"
exclude = ["verification_date"]
[table.columns]
email_verified = { expr = "verification_date IS NOT NULL", type = "boolean", nullable = false }
TOML
    plan_and_run ip "$WORK/ip"
}

# The demo's source and spec (SQLite -> SQLite, 200,000 users and 500,000
# sessions), planned and run as a user would after `ferry demo --dir`.
demo() {
    "$FERRY" demo --dir "$WORK/demo-made" >/dev/null
    mkdir -p "$WORK/demo"
    cp "$WORK/demo-made/source.db" "$WORK/demo-made/ferry.toml" "$WORK/demo/"
    plan_and_run demo "$WORK/demo"
}

declare -a names results
names=("PG -> PG" "MariaDB -> PG" "PG -> MariaDB" "SQLite -> PG" "PG -> PG, users + sessions (FK, unique, index)"
       "in place on PG (a computed NOT NULL column)" "demo (SQLite -> SQLite)")
fixtures
results+=("$(scenario pg_pg "$PG/ferry_est_src" "$PG/ferry_est_dst")"); echo "   PG -> PG          ${results[-1]}"
results+=("$(scenario my_pg "mysql://root@$MY_HOST/ferry_est_src" "$PG/ferry_est_dst")"); echo "   MariaDB -> PG     ${results[-1]}"
results+=("$(scenario pg_my "$PG/ferry_est_src" "mysql://root@$MY_HOST/ferry_est_dst")"); echo "   PG -> MariaDB     ${results[-1]}"
results+=("$(scenario sq_pg "sqlite://$WORK/source.db" "$PG/ferry_est_dst")"); echo "   SQLite -> PG      ${results[-1]}"
results+=("$(fixture_fk)"); echo "   FK fixture        ${results[-1]}"
results+=("$(fixture_in_place)"); echo "   in-place fixture  ${results[-1]}"
results+=("$(demo)"); echo "   demo              ${results[-1]}"

{
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; $ROWS rows per scenario (the FK fixture: as many sessions and a tenth as many users; the demo: its own 700,000), one run each, default settings."
    echo
    echo "| scenario | plan estimate (range) | actual \`ferry run\` | estimate / actual | within 0.8-1.25 | in range | by phase, estimated/actual ms |"
    echo "|---|---|---|---|---|---|---|"
    for i in "${!names[@]}"; do
        read -r est low high act phases <<<"${results[$i]}"
        ratio=$(printf "%.2f" "$(echo "scale=4; $est / $act" | bc)")
        ok=$(echo "$ratio >= 0.8 && $ratio <= 1.25" | bc)
        inside=$(echo "$act >= $low && $act <= $high" | bc)
        echo "| ${names[$i]} | ${est} s (${low}-${high}) | ${act} s | $ratio | $([ "$ok" = 1 ] && echo yes || echo no) | $([ "$inside" = 1 ] && echo yes || echo no) | ${phases//_/ } |"
    done
} | tee "$OUT/estimate.md"

psql_admin -c "DROP DATABASE IF EXISTS ferry_est_src WITH (FORCE)" -c "DROP DATABASE IF EXISTS ferry_est_dst WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS ferry_est_fk WITH (FORCE)" -c "DROP DATABASE IF EXISTS ferry_est_ip WITH (FORCE)"
my -e "DROP DATABASE IF EXISTS ferry_est_src; DROP DATABASE IF EXISTS ferry_est_dst"
