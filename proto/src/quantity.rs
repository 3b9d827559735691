//! Resource quantities (`500m`, `1`, `0.5`, `1Gi`, `256Mi`, `2G`, `1e3`), parsed exactly.
//!
//! A [`Quantity`] holds its value in nano-units as an `i128`, so every quantity
//! Kubernetes accepts (up to `E`/`Ei`, down to `n`) is exact, together with the suffix
//! family it was written in, so its canonical form keeps that family (`1.5Gi` → `1536Mi`,
//! `0.5` → `500m`, `1000m` → `1`). Owns parsing, comparison, arithmetic and formatting;
//! it does not know which resource a quantity belongs to.

use std::fmt;
use std::str::FromStr;

const NANO: i128 = 1_000_000_000;

/// The suffix family a quantity was written in; its canonical form keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantityFormat {
    /// Powers of 1024: Ki, Mi, Gi, Ti, Pi, Ei.
    BinarySi,
    /// Powers of 1000: n, u, m, (none), k, M, G, T, P, E.
    DecimalSi,
    /// A decimal exponent: `1e3`, `5E-3`.
    DecimalExponent,
}

/// An exact resource quantity.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: QuantityFormat,
}

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not have the shape `<number><suffix>`.
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {0:?}")]
    Syntax(String),
    /// The value is beyond what can be represented (over 2^63 units).
    #[error("quantity {0:?} is too large")]
    TooLarge(String),
}

const BINARY: &[(&str, u32)] = &[
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];
const DECIMAL: &[(&str, i32)] = &[
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// The largest magnitude accepted: 2^63 whole units, as Kubernetes' int64 scale.
const MAX_NANOS: i128 = (1i128 << 63) * NANO;

impl Quantity {
    /// The value in nano-units (1 = 1_000_000_000).
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in milli-units, rounded up (CPU is counted in millicores).
    pub fn millis(&self) -> i128 {
        ceil_div(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up (memory is counted in bytes).
    pub fn value(&self) -> i128 {
        ceil_div(self.nanos, NANO)
    }

    /// The suffix family the quantity was written in.
    pub fn format(&self) -> QuantityFormat {
        self.format
    }

    /// A quantity of `millis` milli-units, written in decimal SI.
    pub fn from_millis(millis: i128) -> Quantity {
        Quantity {
            nanos: millis * 1_000_000,
            format: QuantityFormat::DecimalSi,
        }
    }

    /// A quantity of `units` whole units in the given format.
    pub fn from_units(units: i128, format: QuantityFormat) -> Quantity {
        Quantity {
            nanos: units * NANO,
            format,
        }
    }

    /// The sum of two quantities, in the format of `self`.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let nanos = self.nanos.checked_add(other.nanos)?;
        Some(Quantity {
            nanos,
            format: self.format,
        })
    }

    /// The difference of two quantities, in the format of `self`.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        let nanos = self.nanos.checked_sub(other.nanos)?;
        Some(Quantity {
            nanos,
            format: self.format,
        })
    }

    /// True when the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 {
        q
    } else {
        q + 1
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Quantity, QuantityError> {
        let syntax = || QuantityError::Syntax(text.to_owned());
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(syntax());
        }
        // The digits as one integer, scaled by 10^-fraction.len().
        let digits: String = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 38 {
            return Err(QuantityError::TooLarge(text.to_owned()));
        }
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| syntax())?
        };
        let mut exp10: i32 = -(fraction.len() as i32);
        let mut factor: i128 = 1;
        let format = if let Some(&(_, power)) = BINARY.iter().find(|(s, _)| *s == suffix) {
            factor = 1024i128.pow(power);
            QuantityFormat::BinarySi
        } else if let Some(&(_, e)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
            exp10 += e;
            QuantityFormat::DecimalSi
        } else if let Some(exponent) = suffix.strip_prefix(['e', 'E']) {
            let e: i32 = exponent.parse().map_err(|_| syntax())?;
            if !(-64..=64).contains(&e) {
                return Err(QuantityError::TooLarge(text.to_owned()));
            }
            exp10 += e;
            QuantityFormat::DecimalExponent
        } else {
            return Err(syntax());
        };
        // nanos = mantissa * factor * 10^(exp10 + 9), rounded up when sub-nano digits remain.
        let too_large = || QuantityError::TooLarge(text.to_owned());
        let scaled = mantissa.checked_mul(factor).ok_or_else(too_large)?;
        let shift = exp10 + 9;
        let nanos = if shift >= 0 {
            let pow = 10i128.checked_pow(shift as u32).ok_or_else(too_large)?;
            scaled.checked_mul(pow).ok_or_else(too_large)?
        } else {
            match 10i128.checked_pow((-shift) as u32) {
                Some(pow) => ceil_div(scaled, pow),
                None => i128::from(scaled != 0),
            }
        };
        if nanos > MAX_NANOS {
            return Err(too_large());
        }
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }
}

impl fmt::Display for Quantity {
    /// The canonical form: the largest suffix of the quantity's family that keeps the
    /// value an integer (`1536Mi`, `500m`, `2G`, `1k`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let n = self.nanos.abs();
        if n == 0 {
            return f.write_str("0");
        }
        if self.format == QuantityFormat::BinarySi && n % NANO == 0 {
            let units = n / NANO;
            for &(suffix, power) in BINARY.iter().rev() {
                let unit = 1024i128.pow(power);
                if units % unit == 0 && units >= unit {
                    return write!(f, "{sign}{}{suffix}", units / unit);
                }
            }
            // Not a whole multiple of 1Ki: fall through to decimal, as Kubernetes does.
            if units < 1024 {
                return write!(f, "{sign}{units}");
            }
        }
        for &(suffix, e) in DECIMAL.iter().rev() {
            let unit = 10i128.pow((e + 9) as u32);
            if n % unit == 0 {
                return match self.format {
                    QuantityFormat::DecimalExponent if e > 0 => write!(f, "{sign}{}e{e}", n / unit),
                    _ => write!(f, "{sign}{}{suffix}", n / unit),
                };
            }
        }
        write!(f, "{sign}{n}n")
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Quantity) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Quantity) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn cpu_quantities_parse_to_exact_millicores() {
        assert_eq!(q("500m").millis(), 500);
        assert_eq!(q("1").millis(), 1000);
        assert_eq!(q("0.5").millis(), 500);
        assert_eq!(q(".25").millis(), 250);
        assert_eq!(q("2").millis(), 2000);
        assert_eq!(q("100u").nanos(), 100_000);
        assert_eq!(q("1e3").value(), 1000);
    }

    #[test]
    fn memory_quantities_parse_to_exact_bytes() {
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("256Mi").value(), 256 << 20);
        assert_eq!(q("2G").value(), 2_000_000_000);
        assert_eq!(q("1.5Gi").value(), 1536 << 20);
        assert_eq!(q("128974848").value(), 128_974_848);
        assert_eq!(q("129e6").value(), 129_000_000);
        assert_eq!(q("1Ei").value(), 1 << 60);
    }

    #[test]
    fn canonical_form_keeps_the_suffix_family() {
        for (input, canonical) in [
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("2G", "2G"),
            ("2000M", "2G"),
            ("1Gi", "1Gi"),
            ("0", "0"),
            ("-1.5", "-1500m"),
            ("1e3", "1e3"),
            ("512", "512"),
            ("0.1m", "100u"),
        ] {
            assert_eq!(q(input).to_string(), canonical, "{input}");
            assert_eq!(
                q(canonical),
                q(input),
                "canonical form of {input} changes its value"
            );
        }
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for bad in [
            "", "abc", "1.2.3", "1Zi", "1 Gi", "--1", "1e", "1e999", "Gi", ".",
        ] {
            assert!(bad.parse::<Quantity>().is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            "99999999999999999999E".parse::<Quantity>(),
            Err(QuantityError::TooLarge(_))
        ));
    }

    #[test]
    fn comparison_ignores_the_spelling() {
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert!(q("500m") < q("1"));
        assert!(q("1G") < q("1Gi"));
        assert_eq!(q("1").checked_add(&q("500m")).unwrap(), q("1.5"));
    }
}
