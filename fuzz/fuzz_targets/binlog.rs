//! The binary log reader's handling of events, from any bytes: keys or an
//! error, never a panic of Ferry's own. The decoder it uses (mysql_common)
//! panics on some malformed events; Ferry catches those, so this target lets
//! them through its panic hook and aborts on any other.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let file = info.location().map(|l| l.file()).unwrap_or("");
            if ferry_fuzz::panicked_outside_the_decoder(file) {
                eprintln!("{info}");
                std::process::abort();
            }
        }))
    });
    ferry_fuzz::binlog(data);
});
