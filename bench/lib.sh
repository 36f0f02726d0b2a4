# Sourced by the benchmarks that drive an application writer (run from the
# repository's root): a release build of Ferry, a Python with the database
# drivers the writers use, and the servers' URLs.
OUT=bench/out
mkdir -p "$OUT"
cargo build --release -q -p ferry-cli
FERRY=$PWD/target/release/ferry
if ! "$OUT/writer-venv/bin/python" -c "import pymysql, psycopg" 2>/dev/null; then
    python3 -m venv "$OUT/writer-venv" && "$OUT/writer-venv/bin/pip" install -q pymysql "psycopg[binary]"
fi
PY=$PWD/$OUT/writer-venv/bin/python
PG=${FERRY_TEST_PG:-postgres://postgres@127.0.0.1:5432}
now() { date +%s.%N; }
