//! The operator's SQL checker: any text in any dialect is accepted or
//! refused with a reason, never a panic or a stack overflow.
#![no_main]
use ferry_core::plan::EngineName;
use ferry_core::usersql::{validate, Fragment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for engine in [EngineName::Postgres, EngineName::Mysql, EngineName::Sqlite] {
        for kind in [Fragment::Filter, Fragment::Expression, Fragment::Query] {
            if validate(text, kind, engine).is_ok() {
                // What passes can never end the statement it is spliced into:
                // a `;` only inside a quoted string or identifier.
                let quoted = ['\'', '"', '`', '$', '['].iter().any(|q| text.contains(*q));
                assert!(!text.contains(';') || quoted, "{engine:?} {kind:?} accepted {text:?}");
            }
        }
    }
});
