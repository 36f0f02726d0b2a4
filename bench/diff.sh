#!/usr/bin/env bash
# Table comparison speed and correctness, `ferry diff` against reladiff, in the same run:
#   pairs:     PostgreSQL -> PostgreSQL (two databases) and MariaDB -> PostgreSQL
#   scenarios: (a) identical tables, (b) 10 rows updated and 1 deleted on the target
#   and a MariaDB <-> PostgreSQL table whose text holds 4-byte UTF-8 (emoji) and whose
#   JSON was written by each engine: any difference reported there is a false one.
# ROWS rows of 7 mixed columns, the text holding 4-byte UTF-8 (emoji) and a JSON column
# (jsonb / MariaDB json). ferry compares all 7. reladiff is given the columns it reads
# correctly: it refuses jsonb against json, and its MySQL driver reads emoji as `??`
# (every row a false difference), so it compares 5 columns PostgreSQL -> PostgreSQL
# and 4 (no text, no JSON) MariaDB -> PostgreSQL; scenario (b) edits a number that
# both tools see. Timing by farm-bench (A = ferry, B = reladiff, paired runs,
# medians); correctness from each tool's JSON output.
#
#   bench/diff.sh [ROWS] [RUNS]          results: bench/out/diff.md
#
# Needs the servers scripts/test sets up; makes a virtualenv with reladiff[postgresql,mysql].
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${1:-2000000}
RUNS=${2:-3}
PG=${FERRY_TEST_PG:-postgres://postgres@127.0.0.1:5432}
PG_RD=${PG/postgres:/postgresql:}
MY=mysql://root@127.0.0.1:3306
OUT=bench/out
VENV=bench/out/reladiff-venv
mkdir -p "$OUT"

[ -x "$VENV/bin/reladiff" ] || {
    echo "== installing reladiff into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "reladiff[postgresql,mysql]"
}
RELADIFF=$PWD/$VENV/bin/reladiff
export COLUMNS=100000   # reladiff wraps its JSON lines at the terminal width
cargo build --release -q -p ferry-cli
FERRY=${CARGO_TARGET_DIR:-$PWD/target}/release/ferry

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }
psql_db() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 "$PG/$db" "$@"; }
my() { mariadb -h 127.0.0.1 -uroot --default-character-set=utf8mb4 "$@"; }

echo "== preparing $ROWS rows in PostgreSQL (two databases) and MariaDB"
for db in ferry_diff_a ferry_diff_b; do
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
TABLE_DDL="(id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), created_at timestamp NOT NULL, active boolean NOT NULL, score double precision, attrs jsonb)"
psql_db ferry_diff_a -c "CREATE TABLE items $TABLE_DDL" -c "
    INSERT INTO items
    SELECT g, 'item 🚀 ' || g || ' ' || md5(g::text), round((random() * 100000)::numeric, 2),
           timestamp '2024-01-01' + g * interval '17 seconds', g % 3 = 0,
           CASE WHEN g % 10 = 0 THEN NULL ELSE round((random() * 1000)::numeric, 6)::float8 END,
           jsonb_build_object('n', g, 'tag', 'Zürich 🚀')
    FROM generate_series(1, $ROWS) g" -c "VACUUM ANALYZE items"
psql_db ferry_diff_b -c "CREATE TABLE items $TABLE_DDL"
psql_db ferry_diff_a -c "\copy items TO '$PWD/$OUT/items.bin' (FORMAT binary)"
psql_db ferry_diff_b -c "\copy items FROM '$PWD/$OUT/items.bin' (FORMAT binary)" -c "VACUUM ANALYZE items"
rm -f "$OUT/items.bin"

my -e "DROP DATABASE IF EXISTS ferry_diff; CREATE DATABASE ferry_diff CHARACTER SET utf8mb4"
my ferry_diff -e "CREATE TABLE items (id bigint PRIMARY KEY, name longtext NOT NULL, amount decimal(12,2),
    created_at datetime(6) NOT NULL, active tinyint(1) NOT NULL, score double, attrs json)"
psql_db ferry_diff_a -c "\copy (SELECT id, name, amount, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS.US'), active::int, score, attrs FROM items ORDER BY id) TO '$PWD/$OUT/items.tsv'"
my --local-infile=1 ferry_diff -e "LOAD DATA LOCAL INFILE '$PWD/$OUT/items.tsv' INTO TABLE items
    FIELDS TERMINATED BY '\t' LINES TERMINATED BY '\n' (id, name, @amount, created_at, active, @score, attrs)
    SET amount = NULLIF(@amount, '\\\\N'), score = NULLIF(@score, '\\\\N'); ANALYZE TABLE items" >/dev/null
rm -f "$OUT/items.tsv"

# The emoji/JSON table: the same logical rows, each engine writing its own JSON.
NOTES=2000
psql_db ferry_diff_a -c "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL, doc jsonb NOT NULL)" -c "
    INSERT INTO notes SELECT g, 'note ' || g || ' 🦀🧪 ' || repeat('é', g % 5) || ' 😀',
        ('{\"tags\": [\"🦀\", \"x' || g || '\"], \"n\": ' || g || '.50, \"a\": {\"z\": true, \"b\": null}}')::jsonb
    FROM generate_series(1, $NOTES) g"
my ferry_diff -e "CREATE TABLE notes (id int PRIMARY KEY, body varchar(200) NOT NULL, doc json NOT NULL) CHARACTER SET utf8mb4;
    INSERT INTO notes SELECT seq, concat('note ', seq, ' 🦀🧪 ', repeat('é', seq % 5), ' 😀'),
        json_object('a', json_object('b', NULL, 'z', true), 'n', seq + 0.5, 'tags', json_array('🦀', concat('x', seq)))
    FROM seq_1_to_$NOTES"

RESULTS=$OUT/diff.md
{
    echo "# ferry diff vs reladiff — $(date -u +%F), $ROWS rows, $(nproc) cores"
    echo
    echo "ferry $("$FERRY" --version | cut -d' ' -f2), $("$RELADIFF" --version 2>&1 | tail -1) (default settings: hashdiff, 1 thread per database), PostgreSQL $(psql -X -At "$PG/postgres" -c 'SHOW server_version' | cut -d' ' -f1), MariaDB $(my -N -e 'SELECT VERSION()')"
    echo
} > "$RESULTS"

ferry_cmd() { echo "$FERRY diff $1#items $2#items --json${3:+ --columns $3}"; }
reladiff_cmd() {
    local columns="-c name -c amount -c created_at -c active -c score"
    case $1 in mysql*) columns="-c amount -c created_at -c active -c score" ;; esac
    echo "$RELADIFF $1 items $2 items -k id $columns --json"
}

# Keys each tool reports as different: "kind key" lines, sorted.
ferry_found() { { $(ferry_cmd "$1" "$2") || true; } | python3 -c '
import json, sys
r = json.load(sys.stdin)
for d in r["differences"]: print(d["kind"], d["key"].split("=")[1])' | sort; }
reladiff_found() { { $(reladiff_cmd "$1" "$2") 2>/dev/null || true; } | python3 -c '
import json, sys
# reladiff wraps long JSON lines: decode the stream value by value.
text, decoder, pos, signs = sys.stdin.read(), json.JSONDecoder(strict=False), 0, {}
while True:
    while pos < len(text) and text[pos].isspace(): pos += 1
    if pos >= len(text): break
    (sign, row), pos = decoder.raw_decode(text, pos)
    signs.setdefault(str(row[0]), set()).add(sign)
for key, s in signs.items():
    print({frozenset("-+"): "mismatched", frozenset("-"): "missing", frozenset("+"): "extra"}[frozenset(s)], key)' | sort; }

time_pair() { # label, source url (ferry), source url (reladiff), target[, ferry's --columns]
    local label=$1
    echo "== $label"
    {
        echo "## $label"
        echo
        echo '```'
        farm-bench -n "$RUNS" --warmup 0 --timeout 3000 --vs "$(reladiff_cmd "$3" "${4/postgres:/postgresql:}")" -- $(ferry_cmd "$2" "$4" "${5:-}") 2>&1
        echo '```'
        echo
    } >> "$RESULTS"
}

check_found() { # label, expected file, ferry source, reladiff source, target
    local f r
    f=$(ferry_found "$3" "$5")
    r=$(reladiff_found "$4" "${5/postgres:/postgresql:}")
    {
        echo "$1 — expected $(wc -l < "$2") differing keys:"
        echo
        if [ "$f" = "$(cat "$2")" ]; then echo "- ferry: exactly the expected rows"; else echo "- ferry: $(echo -n "$f" | grep -c . || true) reported, NOT exactly the expected rows"; fi
        if [ "$r" = "$(cat "$2")" ]; then echo "- reladiff: exactly the expected rows"; else echo "- reladiff: $(echo -n "$r" | grep -c . || true) reported, NOT exactly the expected rows"; fi
        echo
    } >> "$RESULTS"
}

: > "$OUT/expected-none"
time_pair "(a) identical, PostgreSQL -> PostgreSQL" "$PG/ferry_diff_a" "$PG_RD/ferry_diff_a" "$PG/ferry_diff_b"
check_found "(a) PostgreSQL -> PostgreSQL" "$OUT/expected-none" "$PG/ferry_diff_a" "$PG_RD/ferry_diff_a" "$PG/ferry_diff_b"
time_pair "(a) identical, MariaDB -> PostgreSQL" "$MY/ferry_diff" "$MY/ferry_diff" "$PG/ferry_diff_b"
# The same columns for both: the four reladiff reads correctly.
time_pair "(a') identical, MariaDB -> PostgreSQL, ferry given reladiff's 4 columns" "$MY/ferry_diff" "$MY/ferry_diff" \
    "$PG/ferry_diff_b" amount,created_at,active,score
check_found "(a) MariaDB -> PostgreSQL" "$OUT/expected-none" "$MY/ferry_diff" "$MY/ferry_diff" "$PG/ferry_diff_b"

# 10 updated rows and 1 deleted row, spread over the table.
STEP=$((ROWS / 11))
UPDATED=$(seq "$STEP" "$STEP" $((STEP * 10)) | paste -sd,)
DELETED=$((ROWS - 3))
psql_db ferry_diff_b -c "UPDATE items SET amount = amount + 1 WHERE id IN ($UPDATED)" -c "DELETE FROM items WHERE id = $DELETED"
{ for k in ${UPDATED//,/ }; do echo "mismatched $k"; done; echo "missing $DELETED"; } | sort > "$OUT/expected-some"

time_pair "(b) 10 updated + 1 deleted, PostgreSQL -> PostgreSQL" "$PG/ferry_diff_a" "$PG_RD/ferry_diff_a" "$PG/ferry_diff_b"
check_found "(b) PostgreSQL -> PostgreSQL" "$OUT/expected-some" "$PG/ferry_diff_a" "$PG_RD/ferry_diff_a" "$PG/ferry_diff_b"
time_pair "(b) 10 updated + 1 deleted, MariaDB -> PostgreSQL" "$MY/ferry_diff" "$MY/ferry_diff" "$PG/ferry_diff_b"
check_found "(b) MariaDB -> PostgreSQL" "$OUT/expected-some" "$MY/ferry_diff" "$MY/ferry_diff" "$PG/ferry_diff_b"

echo "== emoji and engine-written JSON, MariaDB <-> PostgreSQL"
{
    echo "## 4-byte UTF-8 and engine-written JSON, MariaDB -> PostgreSQL ($NOTES equal rows)"
    echo
    f=$({ "$FERRY" diff "$MY/ferry_diff#notes" "$PG/ferry_diff_a#notes" --json || true; } | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"])')
    r=$({ "$RELADIFF" "$MY/ferry_diff" notes "$PG_RD/ferry_diff_a" notes -k id -c body --json 2>/dev/null || true; } | grep -c '^\["[-+]"' || true)
    j=$({ "$RELADIFF" "$MY/ferry_diff" notes "$PG_RD/ferry_diff_a" notes -k id -c body -c doc --json 2>&1 || true; } | grep -m1 -o 'ERROR.*' || echo "no error")
    echo "- ferry (body and doc): $f"
    echo "- reladiff, body only: $r difference lines (each would be a false difference)"
    echo "- reladiff, body and doc: $j"
    echo
} >> "$RESULTS"

cat "$RESULTS"
