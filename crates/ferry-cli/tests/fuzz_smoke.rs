//! One short run of every fuzz target on each `scripts/test`: the same checks
//! `scripts/fuzz` runs under libFuzzer (fuzz/src/lib.rs, included here), fed
//! with seeds and a few thousand mutations of them from a fixed random
//! sequence. Not coverage-guided and without a sanitizer (that build alone
//! takes 12 minutes on two cores): it keeps the targets compiling and catches
//! what a shallow mutation finds; docs/reliability.md records the long runs.

#[path = "../../../fuzz/src/lib.rs"]
mod targets;

/// Mutations of each seed per target.
const MUTATIONS: usize = 2_000;

const TOKENS: &[&[u8]] = &[
    b"${",
    b"}",
    b"'",
    b"\"",
    b"`",
    b";",
    b"--",
    b"/*",
    b"*/",
    b"\\",
    b"@",
    b":",
    b"/",
    b"?",
    b"#",
    b"%",
    b"[",
    b"]",
    b"=",
    b"\n",
    b"\0",
    b"\xff",
    b"\xf0\x9f\x98\x80",
];

/// The seeds, then mutations of them: bytes flipped, tokens inserted, cut short, spliced.
fn inputs(seeds: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(0xFE44);
    let mut out: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
    for seed in seeds {
        for _ in 0..MUTATIONS {
            let mut m = seed.to_vec();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..=m.len());
                match rng.u8(..4) {
                    0 if !m.is_empty() => {
                        let last = m.len() - 1;
                        m[at.min(last)] = rng.u8(..);
                    }
                    1 => m.splice(at..at, TOKENS[rng.usize(..TOKENS.len())].iter().copied()).for_each(drop),
                    2 => m.truncate(at),
                    _ => {
                        let other = seeds[rng.usize(..seeds.len())];
                        let from = rng.usize(..=other.len());
                        m.splice(at..at, other[from..].iter().copied()).for_each(drop);
                    }
                }
            }
            out.push(m);
        }
    }
    out
}

fn texts(seeds: &[&str]) -> Vec<String> {
    let bytes: Vec<&[u8]> = seeds.iter().map(|s| s.as_bytes()).collect();
    inputs(&bytes).into_iter().filter_map(|b| String::from_utf8(b).ok()).collect()
}

#[test]
fn spec() {
    let seed = format!(
        "{}[source]\nurl = \"postgres://app:${{PW}}@db/app?sslmode=verify-full\"\n\n[target]\nurl = \"sqlite:t.db\"\n\n\
         [policy]\nbatch_size = 500\nreconnect_for = \"5m\"\n\n[[table]]\nfrom = \"users\"\nfilter = \"id > 3\"\n\
         [table.columns]\nname = {{ to = \"full_name\", expr = \"upper(name)\" }}\n\n[[check]]\nname = \"n\"\nsql = \"SELECT 1\"\nexpect = 1\n",
        ferry_testkit::MIGRATION
    );
    for text in texts(&[&seed]) {
        targets::spec(&text);
    }
}

#[test]
fn database_url() {
    let seeds = [
        "postgres://app:s3cretPW@db.example.com:5433/app?sslmode=verify-full&sslrootcert=/ca.pem",
        "mysql://root:Tr0ub/4dor@127.0.0.1/db?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.pem",
        "sqlite:./data/app.db",
        "postgresql://u@[::1]/x?connect_timeout=5",
    ];
    for text in texts(&seeds) {
        targets::database_url(&text);
    }
}

#[test]
fn user_sql() {
    let seeds = [
        "created_at > '2024-01-01' AND status IN ('a', 'b')",
        "coalesce(upper(name), '') || '-' || id",
        "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL",
        "1=1; DROP TABLE t",
        "`x` = $1$ y $1$ -- z",
    ];
    for text in texts(&seeds) {
        targets::user_sql(&text);
    }
}

#[test]
fn pgoutput() {
    // Begin, relation, insert (tuple of text, null and unchanged TOAST), commit.
    let begin = [b"B".as_slice(), &7u64.to_be_bytes(), &1_000_000i64.to_be_bytes(), &42u32.to_be_bytes()].concat();
    let relation = [
        b"R".as_slice(),
        &9u32.to_be_bytes(),
        b"public\0items\0d",
        &2u16.to_be_bytes(),
        b"\x01id\0",
        &23u32.to_be_bytes(),
        &(-1i32).to_be_bytes(),
        b"\x00name\0",
        &25u32.to_be_bytes(),
        &(-1i32).to_be_bytes(),
    ]
    .concat();
    let insert =
        [b"I".as_slice(), &9u32.to_be_bytes(), b"N", &3u16.to_be_bytes(), b"t", &1u32.to_be_bytes(), b"7n", b"u"]
            .concat();
    let commit = [b"C\0".as_slice(), &7u64.to_be_bytes(), &8u64.to_be_bytes(), &1_000_000i64.to_be_bytes()].concat();
    for data in inputs(&[&begin, &relation, &insert, &commit]) {
        targets::pgoutput(&data);
    }
}

#[test]
fn pg_values() {
    // A type pick, then the value's binary form: int8, numeric, text, timestamptz, jsonb, uuid.
    let seeds: Vec<Vec<u8>> = vec![
        [&[3u8][..], &(-42i64).to_be_bytes()].concat(),
        vec![6, 0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 13, 128],
        [&[7u8][..], "naïve 😀".as_bytes()].concat(),
        [&[13u8][..], &1_000_000i64.to_be_bytes()].concat(),
        [&[15u8, 1][..], br#"{"a": [1, 2.5, null]}"#].concat(),
        [&[16u8][..], &[0xab; 16]].concat(),
    ];
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    for data in inputs(&seeds) {
        targets::pg_values(&data);
    }
}

#[test]
fn binlog() {
    // Panics the decoder makes are caught by Ferry; any other fails the test.
    static OUTSIDE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    std::panic::set_hook(Box::new(|info| {
        let file = info.location().map(|l| l.file().to_string()).unwrap_or_default();
        if targets::panicked_outside_the_decoder(&file) {
            OUTSIDE.lock().unwrap().push(info.to_string());
        }
    }));
    let seeds: [&[u8]; 2] = [
        include_bytes!("../../ferry-mysql/tests/fixtures/rows-no-checksum.binlog"),
        include_bytes!("../../ferry-mysql/tests/fixtures/rows-crc32.binlog"),
    ];
    for data in inputs(&seeds) {
        let _ = std::panic::catch_unwind(|| targets::binlog(&data));
    }
    let _ = std::panic::take_hook();
    let outside = OUTSIDE.lock().unwrap();
    assert!(outside.is_empty(), "panics outside the binary log decoder: {outside:#?}");
}
