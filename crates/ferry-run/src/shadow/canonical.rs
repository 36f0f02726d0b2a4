//! The text a custom shadow query returns, in one spelling per value, so
//! that two engines' answers compare equal when they mean the same: numbers
//! by value (`1.50` = `1.5`), booleans (`t` = `true` = `1`), JSON by
//! structure (key order and spacing ignored), timestamps without a zero
//! fraction or a UTC offset written out.

/// One value's canonical text; `None` (NULL) stays apart from every text.
pub fn canonical_text(text: Option<&str>) -> String {
    let Some(text) = text else { return "\u{0}NULL".into() };
    match text {
        "t" | "true" | "TRUE" => return "1".into(),
        "f" | "false" | "FALSE" => return "0".into(),
        _ => {}
    }
    if let Some(number) = canonical_number(text) {
        return number;
    }
    if text.starts_with('{') || text.starts_with('[') {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
            // serde_json's maps are ordered by key: one spelling per document.
            return json.to_string();
        }
    }
    canonical_timestamp(text).unwrap_or_else(|| text.to_string())
}

/// A result's rows in canonical text; sorted unless their order is part of the answer.
pub fn canonical_rows(rows: Vec<Vec<Option<String>>>, ordered: bool) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> =
        rows.iter().map(|r| r.iter().map(|v| canonical_text(v.as_deref())).collect()).collect();
    if !ordered {
        out.sort();
    }
    out
}

/// `-001.500` → `-1.5`, `2e3` → `2000`; `None` when `text` is not a number.
fn canonical_number(text: &str) -> Option<String> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let plain = !body.is_empty()
        && body.chars().all(|c| c.is_ascii_digit() || c == '.')
        && body.chars().filter(|&c| c == '.').count() <= 1
        && body.chars().any(|c| c.is_ascii_digit());
    if !plain {
        let scientific = body.contains(['e', 'E']) && body.chars().next().is_some_and(|c| c.is_ascii_digit());
        return scientific.then(|| text.parse::<f64>().ok()).flatten().map(canonical_float);
    }
    let negative = text.starts_with('-');
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let digits = match (int.is_empty(), frac.is_empty()) {
        (true, true) => return Some("0".into()),
        (_, true) => int.to_string(),
        (true, false) => format!("0.{frac}"),
        (false, false) => format!("{int}.{frac}"),
    };
    Some(if negative { format!("-{digits}") } else { digits })
}

fn canonical_float(f: f64) -> String {
    canonical_number(&format!("{f}")).unwrap_or_else(|| f.to_string())
}

/// `2024-05-01T10:00:00.000+00:00` → `2024-05-01 10:00:00`.
fn canonical_timestamp(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() >= 19
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && (bytes[10] == b' ' || bytes[10] == b'T')
        && bytes[13] == b':'
        && bytes[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18].iter().all(|&i| bytes[i].is_ascii_digit());
    if !shaped {
        return None;
    }
    let (clock, rest) = text.split_at(19);
    let clock = clock.replacen('T', " ", 1);
    let (fraction, offset) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (r[..end].trim_end_matches('0'), &r[end..])
        }
        None => ("", rest),
    };
    let offset = match offset {
        "" | "Z" | "+00" | "+00:00" | "+0000" => "",
        other => other,
    };
    let fraction = if fraction.is_empty() { String::new() } else { format!(".{fraction}") };
    Some(format!("{clock}{fraction}{offset}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_meaning_has_one_spelling() {
        let same = [
            ("1.50", "1.5"),
            ("-001.500", "-1.5"),
            ("0.000", "0"),
            ("2e3", "2000"),
            ("t", "1"),
            ("false", "0"),
            ("{\"b\": 1, \"a\": [1, 2]}", "{\"a\":[1,2],\"b\":1}"),
            ("2024-05-01T10:00:00.000+00:00", "2024-05-01 10:00:00"),
            ("2024-05-01 10:00:00.120000", "2024-05-01 10:00:00.12"),
            ("héllo 😀", "héllo 😀"),
        ];
        for (a, b) in same {
            assert_eq!(canonical_text(Some(a)), canonical_text(Some(b)), "{a} and {b}");
        }
        let different = [("1.5", "1.51"), ("10", "1"), ("a", "A"), ("2024-05-01 10:00:00+02", "2024-05-01 10:00:00")];
        for (a, b) in different {
            assert_ne!(canonical_text(Some(a)), canonical_text(Some(b)), "{a} and {b}");
        }
        assert_ne!(canonical_text(None), canonical_text(Some("NULL")));
        assert_ne!(canonical_text(None), canonical_text(Some("")));
    }

    #[test]
    fn unordered_results_compare_as_sets_of_rows() {
        let a = vec![vec![Some("1".into()), Some("x".into())], vec![Some("2".into()), None]];
        let b = vec![vec![Some("2".into()), None], vec![Some("1.0".into()), Some("x".into())]];
        assert_eq!(canonical_rows(a.clone(), false), canonical_rows(b.clone(), false));
        assert_ne!(canonical_rows(a, true), canonical_rows(b, true));
    }
}
