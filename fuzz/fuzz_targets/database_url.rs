//! Database URLs as people write them: parsed or refused, the password never
//! in what is shown, the TLS parameters taken out or refused.
#![no_main]
use ferry_engine::tls::{TlsDialect, TlsSettings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let shown = ferry_core::spec::redact_for_message(text);
    if let Ok(url) = ferry_engine::DatabaseUrl::parse(text, std::path::Path::new("/fuzz")) {
        let shown_url = url.to_string();
        if let Some((_, password)) = password_of(text) {
            // A password that also occurs elsewhere in the URL cannot be told apart there, and
            // punctuation can reappear where the URL is normalised: letters and digits only.
            let distinct = password.len() >= 4 && password.bytes().all(|b| b.is_ascii_alphanumeric());
            if distinct && text.matches(password).count() == 1 {
                assert!(!shown_url.contains(password), "password shown: {shown_url}");
                assert!(!shown.contains(password), "password shown: {shown}");
            }
        }
    }
    if let Ok(mut url) = url::Url::parse(text) {
        for dialect in [TlsDialect::Libpq, TlsDialect::Mysql] {
            let _ = TlsSettings::take_from(&mut url.clone(), dialect);
        }
        let _ = TlsSettings::take_from(&mut url, TlsDialect::Libpq);
    }
});

/// `user:password` as the spec's parser splits it (at the last `@`); a
/// `sqlite:` URL is a file path, with no password in it.
fn password_of(text: &str) -> Option<(&str, &str)> {
    if text.starts_with("sqlite:") {
        return None;
    }
    let rest = &text[text.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    let (user, password) = userinfo.split_once(':')?;
    (!password.contains('*') && !password.contains("${")).then_some((user, password))
}
