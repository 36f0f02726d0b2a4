#!/usr/bin/env bash
# The switch's write-unavailability window under a steady application load.
#
# For each engine pair, ROUNDS times: a 100,000-row table is migrated with
# `ferry run`; an application writer (bench/switch_writer.py) inserts RATE
# rows per second (default 500) into the side the switch's hook names, while
# `ferry sync --follow` keeps the target current; the follower is stopped and
# `ferry switch` runs under the load; the writer goes on against the target.
# Reported: the window Ferry measures (fence on the source -> writes recorded
# on the target and the hook done; `ferry status` switch.write_unavailability_ms),
# the longest a single write of the application waited (from when it was due
# until a side acknowledged it; a write the fence refuses is retried every
# millisecond), the longest gap between two acknowledged writes, the whole
# `ferry switch` command, and whether every acknowledged write is on the target.
#
#   bench/switch.sh [RATE] [ROUNDS]     results: bench/out/switch.md
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-500}
ROUNDS=${2:-3}
. bench/lib.sh
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$PG/postgres" "$@"; }
psql_db() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 "$PG/$db" "$@"; }
my() { mariadb -h 127.0.0.1 -uroot "$@"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

DDL="CREATE TABLE items (id bigint PRIMARY KEY, n integer NOT NULL, note varchar(40));"
ROWS=100000

# prepare PAIR: fresh source (filled) and target; sets SRC_KIND SRC_WHERE SRC_URL TGT_KIND TGT_WHERE TGT_URL
prepare() {
    local dir=$1 pair=$2
    rm -rf "$dir"; mkdir -p "$dir"
    case $pair in
        pg-pg|mariadb-pg)
            psql_admin -c "DROP DATABASE IF EXISTS ferry_bench_switch_t WITH (FORCE)" -c "CREATE DATABASE ferry_bench_switch_t"
            TGT_KIND=postgres; TGT_URL=$PG/ferry_bench_switch_t; TGT_WHERE=$TGT_URL ;;
        sqlite-sqlite)
            TGT_KIND=sqlite; TGT_WHERE=$dir/target.db; TGT_URL=sqlite:$TGT_WHERE ;;
    esac
    case $pair in
        pg-pg)
            psql_admin -c "DROP DATABASE IF EXISTS ferry_bench_switch_s WITH (FORCE)" -c "CREATE DATABASE ferry_bench_switch_s"
            psql_db ferry_bench_switch_s -c "$DDL" -c "INSERT INTO items SELECT g, g, 'row ' || g FROM generate_series(1, $ROWS) g"
            SRC_KIND=postgres; SRC_URL=$PG/ferry_bench_switch_s; SRC_WHERE=$SRC_URL ;;
        mariadb-pg)
            my -e "DROP DATABASE IF EXISTS ferry_bench_switch_s; CREATE DATABASE ferry_bench_switch_s"
            my ferry_bench_switch_s -e "$DDL INSERT INTO items SELECT seq, seq, concat('row ', seq) FROM seq_1_to_$ROWS;"
            SRC_KIND=mysql; SRC_URL=mysql://root@127.0.0.1:3306/ferry_bench_switch_s; SRC_WHERE=127.0.0.1:3306/ferry_bench_switch_s ;;
        sqlite-sqlite)
            SRC_WHERE=$dir/source.db
            sqlite3 "$SRC_WHERE" "PRAGMA journal_mode = WAL; $DDL WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < $ROWS) INSERT INTO items SELECT i, i, 'row ' || i FROM g;" > /dev/null
            SRC_KIND=sqlite; SRC_URL=sqlite:$SRC_WHERE ;;
    esac
    printf '[migration]\ndowntime = "0s"\nrollback = "lossless"\nowner = "bench"\n[source]\nurl = "%s"\n[target]\nurl = "%s"\n[switch]\nhook = "printf target > routing"\n[[table]]\nfrom = "items"\n' \
        "$SRC_URL" "$TGT_URL" > "$dir/ferry.toml"
}

count_target() {
    case $TGT_KIND in
        postgres) psql -X -qtA "$TGT_URL" -c "SELECT count(*) FROM items" ;;
        sqlite) sqlite3 "$TGT_WHERE" "SELECT count(*) FROM items" ;;
    esac
}

RESULTS=$OUT/switch.tsv
: > "$RESULTS"
for pair in pg-pg mariadb-pg sqlite-sqlite; do
    for round in $(seq "$ROUNDS"); do
        dir=$PWD/$OUT/switch-$pair
        prepare "$dir" "$pair"
        (cd "$dir" && "$FERRY" run > run.log 2>&1) || { cat "$dir/run.log"; exit 1; }
        rm -f "$dir/routing"
        (cd "$dir" && exec "$FERRY" sync --follow > follow.log 2>&1) & follower=$!
        "$PY" bench/switch_writer.py "$dir/routing" "$RATE" 12 "$SRC_KIND" "$SRC_WHERE" "$TGT_KIND" "$TGT_WHERE" > "$dir/writer.json" & writer=$!
        sleep 5
        kill -TERM "$follower"; wait "$follower" || true
        t0=$(now)
        (cd "$dir" && "$FERRY" switch > switch.log 2>&1) || { cat "$dir/switch.log"; exit 1; }
        switch_s=$(echo "$(now) - $t0" | bc)
        wait "$writer"
        (cd "$dir" && "$FERRY" sync > sync.log 2>&1)
        window=$(cd "$dir" && "$FERRY" status --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["switch"]["write_unavailability_ms"])')
        read -r writes refused wait_ms gap_ms < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["writes"], d["refused"], d["worst_wait_ms"], d["worst_gap_ms"])' "$dir/writer.json")
        on_target=$(count_target)
        complete=$([ "$on_target" -eq $((ROWS + writes)) ] && echo yes || echo "NO ($on_target of $((ROWS + writes)))")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pair" "$window" "$wait_ms" "$gap_ms" "$switch_s" "$writes" "$refused" "$complete" | tee -a "$RESULTS"
    done
done
psql_admin -c "DROP DATABASE IF EXISTS ferry_bench_switch_s WITH (FORCE)" -c "DROP DATABASE IF EXISTS ferry_bench_switch_t WITH (FORCE)"
my -e "DROP DATABASE IF EXISTS ferry_bench_switch_s"

{
    echo "| pair | Ferry's window (median) | longest wait of one write (median) | longest gap between writes (median) | \`ferry switch\` (median) | every write on the target |"
    echo "|---|---|---|---|---|---|"
    for pair in pg-pg mariadb-pg sqlite-sqlite; do
        col() { awk -F'\t' -v p="$pair" -v c="$1" '$1 == p {print $c}' "$RESULTS" | median; }
        all=$(awk -F'\t' -v p="$pair" '$1 == p && $8 != "yes" {bad=1} END {print bad ? "NO" : "yes"}' "$RESULTS")
        printf '| %s | %s ms | %s ms | %s ms | %.2f s | %s |\n' "$pair" "$(col 2)" "$(col 3)" "$(col 4)" "$(col 5)" "$all"
    done
    echo
    echo "$RATE writes/s, $ROUNDS rounds per pair; every round: pair, window ms, wait ms, gap ms, switch s, writes, refusals, complete"
    sed 's/^/    /' "$RESULTS"
} > "$OUT/switch.md"
cat "$OUT/switch.md"
