//! Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011),
//! the counter-based generator of Random123 and cuRAND.
//!
//! A counter-based generator is a keyed bijection `block(counter, key) → 4 × u32`: any draw
//! can be computed directly from its *address*, with no sequential state. This is what makes
//! sampling in this crate independent of batch composition, ordering and thread count, and
//! what lets a GPU kernel produce the very same numbers (DESIGN §2, `rng`).
//!
//! # Addressing
//!
//! * the **key** (64 bits) is derived from `(seed, stream)` by [`RngKey::for_stream`]; the
//!   stream is the identity of one sequence (a request id), never its row in a batch;
//! * the **counter** (128 bits) is `[index, position, step, purpose]`: `index` counts
//!   blocks inside one address, `position` is the token index in the sequence, `step` the
//!   sampler step, `purpose` a [`Purpose`] tag.
//!
//! Each block gives 4 × u32, i.e. two 53-bit uniforms.

use std::convert::Infallible;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// One Philox-4x32-10 block: ten rounds of the Philox S-P network on `ctr` under `key`.
///
/// Matches the Random123 known-answer vectors (see the tests).
///
/// ```
/// use discrete_diffusion::rng::philox4x32_10;
/// assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// ```
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for round in 0..10 {
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        if round < 9 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
    }
    c
}

/// Purpose tag: the fourth counter word. Different purposes at the same
/// `(step, position)` give independent streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Purpose(pub u32);

impl Purpose {
    /// Forward corruption `x_t ~ q(x_t | x_0)`.
    pub const FORWARD_NOISE: Purpose = Purpose(1);
    /// A categorical draw of the next token.
    pub const CATEGORICAL: Purpose = Purpose(2);
    /// Randomness used by position selection (random scorer, annealed Gumbel).
    pub const SELECTION: Purpose = Purpose(3);
    /// Training-time samples of `t`.
    pub const TIME: Purpose = Purpose(4);
    /// Mask / routing decisions (RDM routing variables, stay-masked coins).
    pub const ROUTING: Purpose = Purpose(5);
    /// First tag free for user code; the crate never uses tags at or above it.
    pub const USER: Purpose = Purpose(1 << 16);
}

/// A 64-bit Philox key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RngKey(pub [u32; 2]);

impl RngKey {
    /// The key for a plain seed: its two 32-bit halves (low word first).
    pub fn new(seed: u64) -> Self {
        RngKey([seed as u32, (seed >> 32) as u32])
    }

    /// The key of one stream (one sequence / request) under a seed:
    /// `philox(ctr = [stream_lo, stream_hi, 0, 0x5EED_0001], key = seed)[0..2]`.
    ///
    /// Keying by stream rather than by batch row is what makes draws independent of batch
    /// composition.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let b = philox4x32_10(
            [stream as u32, (stream >> 32) as u32, 0, 0x5EED_0001],
            RngKey::new(seed).0,
        );
        RngKey([b[0], b[1]])
    }
}

/// The 53-bit uniform in `[0, 1)` made of two u32 words: `((hi << 32 | lo) >> 11) · 2⁻⁵³`.
#[inline(always)]
pub fn u64_to_unit_f64(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The 53-bit uniform in `(0, 1]`: `(((hi << 32 | lo) >> 11) + 1) · 2⁻⁵³`, safe under `ln`.
#[inline(always)]
pub fn u64_to_open_unit_f64(x: u64) -> f64 {
    ((x >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Stateless access: the `j`-th u64 (`j = 0, 1, …`) at an address.
///
/// Equal to the `j`-th `next_u64()` of [`CounterRng::new`] at the same address.
#[inline]
pub fn u64_at(key: RngKey, purpose: Purpose, step: u32, position: u32, j: u64) -> u64 {
    let b = philox4x32_10([(j >> 1) as u32, position, step, purpose.0], key.0);
    let k = (j & 1) as usize * 2;
    ((b[k + 1] as u64) << 32) | b[k] as u64
}

/// Counters processed together by [`philox4x32_10_lanes`] and [`first_uniforms`].
pub const PHILOX_LANES: usize = 8;

/// [`philox4x32_10`] on [`PHILOX_LANES`] counters under one key — word `w` of counter `j`
/// at `ctr[w][j]` — returning the same words as `PHILOX_LANES` separate calls. Written on
/// lane arrays so that the compiler vectorises it (`32 × 32 → 64`-bit multiplies side by
/// side; used inside functions compiled for AVX2/AVX-512 it runs 4–8 counters per
/// instruction).
///
/// ```
/// use discrete_diffusion::rng::{PHILOX_LANES, philox4x32_10, philox4x32_10_lanes};
/// let key = [7, 8];
/// let ctr: [[u32; PHILOX_LANES]; 4] = std::array::from_fn(|w| std::array::from_fn(|j| (10 * w + j) as u32));
/// let out = philox4x32_10_lanes(ctr, key);
/// for j in 0..PHILOX_LANES {
///     let one = philox4x32_10([ctr[0][j], ctr[1][j], ctr[2][j], ctr[3][j]], key);
///     assert_eq!(one, [out[0][j], out[1][j], out[2][j], out[3][j]]);
/// }
/// ```
#[inline(always)]
pub fn philox4x32_10_lanes(
    ctr: [[u32; PHILOX_LANES]; 4],
    key: [u32; 2],
) -> [[u32; PHILOX_LANES]; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = ctr;
    let mut k = key;
    for round in 0..10 {
        let mut n = [[0u32; PHILOX_LANES]; 4];
        for j in 0..PHILOX_LANES {
            let (hi0, lo0) = mulhilo(M0, c0[j]);
            let (hi1, lo1) = mulhilo(M1, c2[j]);
            n[0][j] = hi1 ^ c1[j] ^ k[0];
            n[1][j] = lo1;
            n[2][j] = hi0 ^ c3[j] ^ k[1];
            n[3][j] = lo0;
        }
        [c0, c1, c2, c3] = n;
        if round < 9 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
    }
    [c0, c1, c2, c3]
}

/// The first uniform of `CounterRng::new(key, purpose, step, p)` (what its first
/// [`CounterRng::uniform`] returns) for the [`PHILOX_LANES`] positions
/// `p = p0, p0 + 1, …` (wrapping at `2³²`), through [`philox4x32_10_lanes`].
///
/// ```
/// use discrete_diffusion::rng::{CounterRng, PHILOX_LANES, Purpose, RngKey, first_uniforms};
/// let key = RngKey::for_stream(1, 2);
/// let u = first_uniforms(key, Purpose::ROUTING, 3, 40);
/// for j in 0..PHILOX_LANES {
///     let one = CounterRng::new(key, Purpose::ROUTING, 3, 40 + j as u32).uniform();
///     assert_eq!(u[j], one);
/// }
/// ```
#[inline(always)]
pub fn first_uniforms(key: RngKey, purpose: Purpose, step: u32, p0: u32) -> [f64; PHILOX_LANES] {
    let ctr = [
        [0; PHILOX_LANES],
        std::array::from_fn(|j| p0.wrapping_add(j as u32)),
        [step; PHILOX_LANES],
        [purpose.0; PHILOX_LANES],
    ];
    let b = philox4x32_10_lanes(ctr, key.0);
    std::array::from_fn(|j| u64_to_unit_f64(((b[1][j] as u64) << 32) | b[0][j] as u64))
}

/// A sequential view of one address: a [`rand::Rng`] that walks the `index` counter.
///
/// `next_u64` consumes half a block; `next_u32` a quarter. Up to 2³² blocks per address.
#[derive(Clone, Debug)]
pub struct CounterRng {
    key: RngKey,
    ctr: [u32; 4],
    buf: [u32; 4],
    used: usize,
}

impl CounterRng {
    /// The stream at `(key, purpose, step, position)`, starting at block 0.
    pub fn new(key: RngKey, purpose: Purpose, step: u32, position: u32) -> Self {
        CounterRng {
            key,
            ctr: [0, position, step, purpose.0],
            buf: [0; 4],
            used: 4,
        }
    }

    #[inline(always)]
    fn refill(&mut self) {
        self.buf = philox4x32_10(self.ctr, self.key.0);
        self.ctr[0] = self.ctr[0].wrapping_add(1);
        self.used = 0;
    }

    /// Next u32.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.used >= 4 {
            self.refill();
        }
        let x = self.buf[self.used];
        self.used += 1;
        x
    }

    /// Next u64 (two consecutive u32 words, low first; always word-pair aligned).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        if self.used > 2 {
            self.refill();
        } else if self.used == 1 {
            self.used = 2;
        }
        let x = ((self.buf[self.used + 1] as u64) << 32) | self.buf[self.used] as u64;
        self.used += 2;
        x
    }

    /// Uniform f64 in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        u64_to_unit_f64(self.next_u64())
    }

    /// Uniform f64 in `(0, 1]` with 53 random bits (never 0, so `ln` is finite).
    #[inline]
    pub fn uniform_open(&mut self) -> f64 {
        u64_to_open_unit_f64(self.next_u64())
    }

    /// Standard exponential `E = −ln U`, `U ∈ (0, 1]`, in f64 (max ≈ 36.7).
    #[inline]
    pub fn exponential(&mut self) -> f64 {
        -self.uniform_open().ln()
    }
}

impl rand::TryRng for CounterRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(CounterRng::next_u32(self))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(CounterRng::next_u64(self))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(4) {
            let w = CounterRng::next_u32(self).to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random123_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn stateless_equals_sequential() {
        let key = RngKey::for_stream(42, 7);
        let mut r = CounterRng::new(key, Purpose::CATEGORICAL, 3, 11);
        for j in 0..9 {
            assert_eq!(r.next_u64(), u64_at(key, Purpose::CATEGORICAL, 3, 11, j));
        }
    }

    #[test]
    fn addresses_are_distinct_streams() {
        let key = RngKey::for_stream(1, 0);
        let a = u64_at(key, Purpose::CATEGORICAL, 0, 0, 0);
        assert_ne!(a, u64_at(key, Purpose::CATEGORICAL, 0, 1, 0));
        assert_ne!(a, u64_at(key, Purpose::CATEGORICAL, 1, 0, 0));
        assert_ne!(a, u64_at(key, Purpose::SELECTION, 0, 0, 0));
        assert_ne!(
            a,
            u64_at(RngKey::for_stream(1, 1), Purpose::CATEGORICAL, 0, 0, 0)
        );
        assert_ne!(
            a,
            u64_at(RngKey::for_stream(2, 0), Purpose::CATEGORICAL, 0, 0, 0)
        );
    }

    #[test]
    fn uniform_ranges() {
        assert_eq!(u64_to_unit_f64(0), 0.0);
        assert!(u64_to_unit_f64(u64::MAX) < 1.0);
        assert!(u64_to_open_unit_f64(0) > 0.0);
        assert_eq!(u64_to_open_unit_f64(u64::MAX), 1.0);
    }
}
