//! The engine conformance suite (ferry_testkit::conformance) against each
//! engine: a fourth engine is one more line here.

ferry_testkit::engine_conformance!(sqlite, Sqlite);
ferry_testkit::engine_conformance!(postgres, Postgres);
ferry_testkit::engine_conformance!(mysql, Mysql);
