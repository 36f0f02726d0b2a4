//! Exact decimals as text.
//!
//! Ferry never routes a decimal through a float. A decimal is kept as its
//! digits: `Decimal::parse` accepts what engines print, `round_to_scale`
//! does what the target column will do (round half away from zero, as both
//! PostgreSQL and MySQL do), and `canonical` drops the trailing zeros so that
//! `1.50` and `1.5` compare equal.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    /// Integer digits, no leading zeros (empty for zero).
    int: String,
    /// Fraction digits, as many as the value was written with.
    frac: String,
}

/// For text already in plain form (`-?digits[.digits]`, no leading zeros):
/// the number of integer digits and of fraction digits. Lets hot paths skip
/// parsing values that are already what the column wants.
pub fn plain_shape(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let body = b.strip_prefix(b"-").unwrap_or(b);
    let (int, frac) = match body.iter().position(|&c| c == b'.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[body.len()..]),
    };
    let plain = !int.is_empty()
        && int.iter().all(u8::is_ascii_digit)
        && frac.iter().all(u8::is_ascii_digit)
        && (int.len() == 1 || int[0] != b'0')
        && (!frac.is_empty() || !body.contains(&b'.'));
    if !plain {
        return None;
    }
    let int_digits = if int == b"0" { 0 } else { int.len() };
    Some((int_digits, frac.len()))
}

/// The canonical form of a plainly written decimal (`-12.340`), as its
/// parts (negative, integer digits, fraction digits without trailing zeros),
/// borrowed from the text: the common case, without parsing or allocating.
pub fn canonical_parts(s: &str) -> Option<(bool, &str, &str)> {
    plain_shape(s)?;
    let negative = s.starts_with('-');
    let body = if negative { &s[1..] } else { s };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let frac = frac.trim_end_matches('0');
    let zero = int == "0" && frac.is_empty();
    Some((negative && !zero, int, frac))
}

impl Decimal {
    /// Parses `-12.340`, `+5`, `.5`, `1e3`, `1.5E-2`.
    pub fn parse(input: &str) -> Option<Decimal> {
        let s = input.trim();
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
            None => (s, 0),
        };
        let (int, frac) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut digits = format!("{int}{frac}");
        let mut point = int.len() as i64 + exponent as i64;
        if point < 0 {
            digits.insert_str(0, &"0".repeat((-point) as usize));
            point = 0;
        }
        let point = point as usize;
        if digits.len() < point {
            digits.push_str(&"0".repeat(point - digits.len()));
        }
        let int = digits[..point].trim_start_matches('0').to_string();
        let frac = digits[point..].to_string();
        let mut d = Decimal { negative, int, frac };
        if d.is_zero() {
            d.negative = false;
        }
        Some(d)
    }

    /// The shortest decimal that reads back as `f`, or `None` for NaN/infinity.
    pub fn from_f64(f: f64) -> Option<Decimal> {
        if !f.is_finite() {
            return None;
        }
        Decimal::parse(&format!("{f:?}"))
    }

    pub fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.bytes().all(|b| b == b'0')
    }

    pub fn integer_digits(&self) -> usize {
        self.int.len()
    }

    pub fn scale(&self) -> usize {
        self.frac.len()
    }

    /// Rounds half away from zero to `scale` fraction digits (or pads).
    pub fn round_to_scale(&self, scale: usize) -> Decimal {
        if self.frac.len() <= scale {
            let mut frac = self.frac.clone();
            frac.push_str(&"0".repeat(scale - self.frac.len()));
            return Decimal { negative: self.negative, int: self.int.clone(), frac };
        }
        let round_up = self.frac.as_bytes()[scale] >= b'5';
        let mut digits: Vec<u8> = format!("{}{}", self.int, &self.frac[..scale]).into_bytes();
        if round_up {
            let mut i = digits.len();
            loop {
                if i == 0 {
                    digits.insert(0, b'1');
                    break;
                }
                i -= 1;
                if digits[i] == b'9' {
                    digits[i] = b'0';
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
        let point = digits.len() - scale;
        let text = String::from_utf8(digits).expect("ascii digits");
        let mut d = Decimal {
            negative: self.negative,
            int: text[..point].trim_start_matches('0').to_string(),
            frac: text[point..].to_string(),
        };
        if d.is_zero() {
            d.negative = false;
        }
        d
    }

    /// The value without trailing fraction zeros: one text per number.
    pub fn canonical(&self) -> String {
        let frac = self.frac.trim_end_matches('0');
        let int = if self.int.is_empty() { "0" } else { &self.int };
        let sign = if self.negative && !self.is_zero() { "-" } else { "" };
        if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    }

    /// Integer value if the number has no fractional part and fits.
    pub fn to_i64(&self) -> Option<i64> {
        if !self.frac.bytes().all(|b| b == b'0') {
            return None;
        }
        let int = if self.int.is_empty() { "0" } else { &self.int };
        let magnitude: i128 = int.parse().ok()?;
        let v = if self.negative { -magnitude } else { magnitude };
        i64::try_from(v).ok()
    }

    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = if self.int.is_empty() { "0" } else { &self.int };
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str(int)?;
        if !self.frac.is_empty() {
            write!(f, ".{}", self.frac)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(d("-12.340").to_string(), "-12.340");
        assert_eq!(d("+5").to_string(), "5");
        assert_eq!(d(".5").to_string(), "0.5");
        assert_eq!(d("1e3").to_string(), "1000");
        assert_eq!(d("1.5E-2").to_string(), "0.015");
        assert_eq!(d("-0.00").canonical(), "0");
        assert_eq!(d("00012.3400").canonical(), "12.34");
        assert!(Decimal::parse("1.2.3").is_none());
        assert!(Decimal::parse("abc").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse("-").is_none());
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(d("1.005").round_to_scale(2).to_string(), "1.01");
        assert_eq!(d("-1.005").round_to_scale(2).to_string(), "-1.01");
        assert_eq!(d("9.995").round_to_scale(2).to_string(), "10.00");
        assert_eq!(d("1.5").round_to_scale(3).to_string(), "1.500");
        assert_eq!(d("-0.001").round_to_scale(2).to_string(), "0.00");
        assert_eq!(d("0.5").round_to_scale(0).to_string(), "1");
    }

    #[test]
    fn plain_shapes() {
        assert_eq!(plain_shape("-123.45"), Some((3, 2)));
        assert_eq!(plain_shape("0.5"), Some((0, 1)));
        assert_eq!(plain_shape("7"), Some((1, 0)));
        for odd in ["007", "1.", ".5", "1e3", "-", "", "1.2.3", "+1", "NaN"] {
            assert_eq!(plain_shape(odd), None, "{odd}");
        }
    }

    #[test]
    fn converts() {
        assert_eq!(d("42.000").to_i64(), Some(42));
        assert_eq!(d("42.5").to_i64(), None);
        assert_eq!(Decimal::from_f64(0.1).unwrap().to_string(), "0.1");
        assert_eq!(Decimal::from_f64(1e21).unwrap().canonical(), "1000000000000000000000");
    }

    proptest! {
        #[test]
        fn canonical_is_stable_under_padding(int in 0u64..u64::MAX, frac in "[0-9]{0,8}", pad in 0usize..5, neg: bool) {
            let text = format!("{}{}.{}", if neg { "-" } else { "" }, int, frac);
            let padded = format!("{}{}", text, "0".repeat(pad));
            prop_assert_eq!(d(&text).canonical(), d(&padded).canonical());
        }

        #[test]
        fn integers_round_trip(i: i64) {
            prop_assert_eq!(d(&i.to_string()).to_i64(), Some(i));
            prop_assert_eq!(d(&i.to_string()).canonical(), i.to_string());
        }
    }
}
