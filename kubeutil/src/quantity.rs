//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1e3`, `2k`): a parser into
//! exact milli-units, shared by the apiserver, the scheduler and the controllers.
//!
//! Grammar (as upstream documents it): an optional sign, a decimal number (`1`, `1.5`,
//! `.5`, `5.`), then one suffix: binary (`Ki Mi Gi Ti Pi Ei`), decimal SI
//! (`n u m "" k M G T P E`) or a decimal exponent (`e3`, `E-2`). Values below one
//! milli-unit round away from zero, as upstream's `MilliValue` rounds up.

use serde_json::Value;

/// Why a quantity did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityError {
    /// Not of the quantity grammar.
    Format,
    /// Of the grammar, but too large to represent in milli-units.
    TooLarge,
}

/// The message upstream gives for a quantity that does not parse.
pub const QUANTITY_FORMAT_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Significant digits kept exactly (10^36 fits in an i128 with room for the multipliers).
const MAX_DIGITS: usize = 36;

/// Powers of ten as i128, or None beyond 10^38.
fn pow10(e: u32) -> Option<i128> {
    10i128.checked_pow(e)
}

/// The multiplier of a suffix: (power of 1024, power of 10).
fn suffix(s: &str) -> Option<(u32, i64)> {
    Some(match s {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        _ => {
            let rest = s.strip_prefix(['e', 'E'])?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // Exponents beyond this overflow or vanish anyway.
            let e: i64 = if digits.len() > 6 {
                1_000_000
            } else {
                digits.parse().ok()?
            };
            (0, if rest.starts_with('-') { -e } else { e })
        }
    })
}

/// Parses a quantity into milli-units (`"100m"` → 100, `"1"` → 1000, `"1Ki"` → 1_024_000).
pub fn parse_milli(s: &str) -> Result<i128, QuantityError> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = body
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'.')
        .count();
    let (number, rest) = body.split_at(num_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(QuantityError::Format);
    }
    let (binary, mut power) = suffix(rest).ok_or(QuantityError::Format)?;
    // All digits, with leading zeros dropped; the decimal point moves into `power`.
    let all: String = int_part.chars().chain(frac_part.chars()).collect();
    let digits = all.trim_start_matches('0');
    power -= frac_part.len() as i64;
    power += 3; // milli-units
    let (kept, dropped) = digits.split_at(digits.len().min(MAX_DIGITS));
    let sticky = dropped.bytes().any(|c| c != b'0');
    power += dropped.len() as i64;
    let mut mantissa: i128 = 0;
    for c in kept.bytes() {
        mantissa = mantissa * 10 + i128::from(c - b'0');
    }
    let scale = 1024i128.pow(binary);
    let value = if power >= 0 {
        if sticky {
            // Digits below the kept ones are not whole milli-units only for values far
            // beyond any real resource; refuse them rather than round wrongly.
            return Err(QuantityError::TooLarge);
        }
        let p = u32::try_from(power).map_err(|_| QuantityError::TooLarge)?;
        let p10 = if mantissa == 0 { Some(0) } else { pow10(p) };
        mantissa
            .checked_mul(scale)
            .and_then(|m| m.checked_mul(p10?))
            .ok_or(QuantityError::TooLarge)?
    } else {
        let m = mantissa.checked_mul(scale).ok_or(QuantityError::TooLarge)?;
        let p = u32::try_from(-power).unwrap_or(u32::MAX);
        match pow10(p) {
            Some(d) => {
                let q = m / d;
                if m % d != 0 || sticky { q + 1 } else { q }
            }
            // Dividing by more than 10^38 leaves less than one milli-unit.
            None => i128::from(m != 0 || sticky),
        }
    };
    Ok(if negative { -value } else { value })
}

/// A quantity in milli-units, or None if it does not parse or is out of range.
pub fn quantity_milli(s: &str) -> Option<i128> {
    parse_milli(s).ok()
}

/// A quantity in whole units, rounded up (`"100m"` → 1, `"1Gi"` → 1073741824).
pub fn quantity_value(s: &str) -> Option<i128> {
    let m = quantity_milli(s)?;
    Some(if m >= 0 { (m + 999) / 1000 } else { m / 1000 })
}

/// A quantity as a float (approximate), for display and ratios.
pub fn parse_quantity(s: &str) -> Option<f64> {
    quantity_milli(s).map(|m| m as f64 / 1000.0)
}

/// A quantity field's text: strings as they are, JSON numbers in decimal (clients send
/// `cpu: 1` as a number); None for other types.
pub fn quantity_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => format!("{f}"),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grammar() {
        assert_eq!(quantity_milli("100m"), Some(100));
        assert_eq!(quantity_milli("1"), Some(1000));
        assert_eq!(quantity_milli("1.5"), Some(1500));
        assert_eq!(quantity_milli(".5"), Some(500));
        assert_eq!(quantity_milli("5."), Some(5000));
        assert_eq!(quantity_milli("1Ki"), Some(1_024_000));
        assert_eq!(quantity_milli("1e3"), Some(1_000_000));
        assert_eq!(quantity_milli("1E-3"), Some(1));
        assert_eq!(quantity_milli("1n"), Some(1));
        assert_eq!(quantity_milli("-1n"), Some(-1));
        assert_eq!(quantity_milli("0.0001"), Some(1));
        assert_eq!(quantity_milli("1E"), Some(1_000_000_000_000_000_000_000));
        assert_eq!(
            quantity_milli("000000000000000000000000000000000000000000001"),
            Some(1000)
        );
        assert_eq!(quantity_milli("0e99999999999"), Some(0));
        assert_eq!(parse_milli("1e99"), Err(QuantityError::TooLarge));
        assert_eq!(parse_milli("1e-99"), Ok(1));
        for bad in [
            "", ".", "-", "1.2.3", "1e", "1Kb", "1 ", " 1", "1ki", "abc", "--1", "1e+",
        ] {
            assert_eq!(parse_milli(bad), Err(QuantityError::Format), "{bad:?}");
        }
    }
}
