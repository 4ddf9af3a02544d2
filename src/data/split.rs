//! Fixed held-out splits by a hash of the record id.
//!
//! A record is held out iff `h(id) < fraction · 2⁶⁴`, where `h` is 64-bit FNV-1a over the
//! id's UTF-8 bytes followed by the SplitMix64 finaliser (for avalanche). The split is a
//! pure function of the id: it does not depend on file order, on the other records, on the
//! platform or on the crate version, and growing the fraction only moves records from train
//! to held-out.

use crate::error::{Error, Result};

/// The stable 64-bit hash of `id` used by [`is_heldout`].
pub fn id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Whether the record `id` belongs to the held-out split of size `fraction ∈ [0, 1]`.
pub fn is_heldout(id: &str, fraction: f64) -> Result<bool> {
    let f = check_fraction(fraction)?;
    Ok(heldout_unchecked(id, f))
}

pub(crate) fn check_fraction(fraction: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(Error::invalid(
            "heldout_fraction",
            format!("{fraction} is not in [0, 1]"),
        ));
    }
    Ok(fraction)
}

pub(crate) fn heldout_unchecked(id: &str, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    // u64 → f64 rounds to 53 bits; the split stays a deterministic function of the id.
    (id_hash(id) as f64) < fraction * 18_446_744_073_709_551_616.0
}

/// Train and held-out parts of a data set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset<T> {
    /// Training records.
    pub train: Vec<T>,
    /// Held-out records (fixed by [`is_heldout`] on each record's id).
    pub heldout: Vec<T>,
}

impl<T> Dataset<T> {
    /// Split `(id, record)` pairs by [`is_heldout`]; order within each part is input order.
    pub fn split<I>(records: I, heldout_fraction: f64) -> Result<Self>
    where
        I: IntoIterator<Item = (String, T)>,
    {
        let f = check_fraction(heldout_fraction)?;
        let mut d = Dataset {
            train: Vec::new(),
            heldout: Vec::new(),
        };
        for (id, r) in records {
            if heldout_unchecked(&id, f) {
                d.heldout.push(r);
            } else {
                d.train.push(r);
            }
        }
        Ok(d)
    }

    /// Apply a fallible map to every record; `Ok(None)` drops the record (e.g. a codec's
    /// skip policy). The first error is returned.
    pub fn try_filter_map<U, F>(self, mut f: F) -> Result<Dataset<U>>
    where
        F: FnMut(T) -> Result<Option<U>>,
    {
        let mut g = |v: Vec<T>| -> Result<Vec<U>> {
            let mut out = Vec::with_capacity(v.len());
            for r in v {
                if let Some(u) = f(r)? {
                    out.push(u);
                }
            }
            Ok(out)
        };
        Ok(Dataset {
            train: g(self.train)?,
            heldout: g(self.heldout)?,
        })
    }

    /// Total number of records.
    pub fn len(&self) -> usize {
        self.train.len() + self.heldout.len()
    }

    /// Whether both parts are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
