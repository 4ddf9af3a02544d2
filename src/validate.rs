//! Boundary validation helpers shared by every module (DESIGN §5).
//!
//! These are `pub(crate)`: the public API calls them on entry and hot inner loops never do.

use crate::error::{Error, Result};

/// Default tolerance for "sums to one" checks on f64 probability vectors.
pub(crate) const SIMPLEX_TOL: f64 = 1e-9;

/// `t` must be a finite number in `[0, 1]`.
pub(crate) fn time(arg: &'static str, t: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&t) {
        return Err(Error::invalid(arg, format!("time {t} is outside [0, 1]")));
    }
    Ok(t)
}

/// A finite scalar.
pub(crate) fn finite(arg: &'static str, x: f64) -> Result<f64> {
    if !x.is_finite() {
        return Err(Error::NonFinite {
            arg,
            index: 0,
            value: x,
        });
    }
    Ok(x)
}

/// A probability in `[0, 1]`.
pub(crate) fn probability(arg: &'static str, p: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid(
            arg,
            format!("{p} is not a probability in [0, 1]"),
        ));
    }
    Ok(p)
}

/// A vocabulary size: at least 2 states, and every id must fit in `u32`.
pub(crate) fn vocab(arg: &'static str, v: usize) -> Result<usize> {
    if v < 2 {
        return Err(Error::invalid(
            arg,
            format!("vocabulary size {v} must be at least 2"),
        ));
    }
    if v > u32::MAX as usize {
        return Err(Error::invalid(
            arg,
            format!("vocabulary size {v} exceeds u32 ids"),
        ));
    }
    Ok(v)
}

/// A single token id in `0..v`.
pub(crate) fn token(arg: &'static str, x: u32, v: usize) -> Result<usize> {
    if (x as usize) >= v {
        return Err(Error::TokenOutOfRange {
            arg,
            index: 0,
            token: x as u64,
            vocab: v,
        });
    }
    Ok(x as usize)
}

/// Every token of a slice in `0..v`.
pub(crate) fn tokens<'a, I>(arg: &'static str, xs: I, v: usize) -> Result<()>
where
    I: IntoIterator<Item = &'a u32>,
{
    for (index, &x) in xs.into_iter().enumerate() {
        if (x as usize) >= v {
            return Err(Error::TokenOutOfRange {
                arg,
                index,
                token: x as u64,
                vocab: v,
            });
        }
    }
    Ok(())
}

/// A slice has exactly `n` elements.
pub(crate) fn len(arg: &'static str, got: usize, expected: usize) -> Result<()> {
    if got != expected {
        return Err(Error::shape(
            arg,
            format!("length {expected}"),
            format!("length {got}"),
        ));
    }
    Ok(())
}

/// Every element is finite (f32 or f64).
pub(crate) fn all_finite<'a, F, I>(arg: &'static str, xs: I) -> Result<()>
where
    F: num_traits::Float + 'a,
    I: IntoIterator<Item = &'a F>,
{
    for (index, x) in xs.into_iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::NonFinite {
                arg,
                index,
                value: x.to_f64().unwrap_or(f64::NAN),
            });
        }
    }
    Ok(())
}

/// A probability vector: finite, non-negative, summing to 1 within `tol`.
pub(crate) fn distribution(arg: &'static str, p: &[f64], tol: f64) -> Result<()> {
    if p.is_empty() {
        return Err(Error::NotADistribution {
            arg,
            reason: "empty vector".into(),
        });
    }
    let mut sum = 0.0;
    for (i, &x) in p.iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::NonFinite {
                arg,
                index: i,
                value: x,
            });
        }
        if x < 0.0 {
            return Err(Error::NotADistribution {
                arg,
                reason: format!("entry {i} is negative ({x})"),
            });
        }
        sum += x;
    }
    if (sum - 1.0).abs() > tol {
        return Err(Error::NotADistribution {
            arg,
            reason: format!("entries sum to {sum}, not 1 (tolerance {tol})"),
        });
    }
    Ok(())
}

/// Finite, non-negative masses with a positive total (an unnormalised distribution).
pub(crate) fn masses(arg: &'static str, p: &[f64]) -> Result<f64> {
    let mut sum = 0.0;
    for (i, &x) in p.iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::NonFinite {
                arg,
                index: i,
                value: x,
            });
        }
        if x < 0.0 {
            return Err(Error::NotADistribution {
                arg,
                reason: format!("mass {i} is negative ({x})"),
            });
        }
        sum += x;
    }
    if sum <= 0.0 || p.is_empty() {
        return Err(Error::NotADistribution {
            arg,
            reason: "total mass is zero".into(),
        });
    }
    Ok(sum)
}
