//! The enumerable space shared by the guidance tests (`guidance_classifier.rs`,
//! `guidance_rate.rs`): sequences of `L = 3` tokens over `V = 4` states (one of them the
//! test's mask), indexed `0..N`, and the exact noisy classifier of an absorbing process.

use discrete_diffusion::sample::guidance::Classifier;

pub const V: usize = 4;
pub const L: usize = 3;
/// `V^L`, the number of sequences.
pub const N: usize = 64;

/// The sequence of index `idx` (base `V`, most significant position first).
pub fn seq(mut idx: usize) -> [u32; L] {
    let mut x = [0u32; L];
    for slot in x.iter_mut().rev() {
        *slot = (idx % V) as u32;
        idx /= V;
    }
    x
}

/// A deterministic pseudo-random number in (0, 1).
pub fn hash01(k: usize, salt: u64) -> f64 {
    let mut z = (k as u64)
        .wrapping_add(salt)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z ^= z >> 31;
    z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 29;
    ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Whether `x` holds no `mask` token.
pub fn clean_of(x: &[u32], mask: u32) -> bool {
    x.iter().all(|&t| t != mask)
}

/// A data law on the sequences: `floor + hash01(k, salt)` (normalised) on every sequence
/// `k` without `mask`, 0 on those containing it.
pub fn law_without_mask(mask: u32, floor: f64, salt: u64) -> Vec<f64> {
    let mut p: Vec<f64> = (0..N)
        .map(|k| {
            if clean_of(&seq(k), mask) {
                floor + hash01(k, salt)
            } else {
                0.0
            }
        })
        .collect();
    let z: f64 = p.iter().sum();
    p.iter_mut().for_each(|q| *q /= z);
    p
}

/// The exact noisy classifier of an absorbing process with mask token `mask`:
/// `p_t(y | x_t) = Σ_{x0 consistent with x_t} p(x0) p(y | x0) / Σ_{x0 consistent} p(x0)`
/// (time-independent), for the data law `data` and `py[k] = p(y | seq(k))`.
pub struct NoisyClassifier {
    pub data: Vec<f64>,
    pub py: Vec<f64>,
    pub mask: u32,
}

impl Classifier for NoisyClassifier {
    fn vocab_size(&self) -> usize {
        V
    }
    fn log_prob(&self, x: &[u32], _t: f64) -> discrete_diffusion::Result<f64> {
        let (mut num, mut den) = (0.0, 0.0);
        for k in 0..N {
            let x0 = seq(k);
            if x.iter().zip(&x0).all(|(&a, &b)| a == self.mask || a == b) {
                num += self.data[k] * self.py[k];
                den += self.data[k];
            }
        }
        Ok((num / den).ln())
    }
}
