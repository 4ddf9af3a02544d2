//! The pass ([`kernel::pass`]) against a plain scalar statement of its specification —
//! per block: maximum over 16 lanes, raise, then the sums relative to the raised maximum
//! (pairs of 16-id chunks summed lane-wise in `f32`) in 16 `f64` lanes and a pairwise tree — bit for bit, on every available instruction
//! set, in every mode, on rows chosen to exercise the pass's speculation (a block that
//! raises the running maximum has its sums recomputed): random rows, increasing rows
//! (every block raises), decreasing rows (none after the first), rows whose maximum sits
//! in the last block, `−∞` and NaN blocks after finite ones, ragged tails and excluded
//! segments.

use super::exp::{EXP_CUTOFF, exp_nonpositive};
use super::kernel::{self, BLOCK, BlockRec, LANES, Mode, Simd, sum_lanes};
use super::segments;

fn fmax(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

fn fmin(a: f32, b: f32) -> f32 {
    if a < b { a } else { b }
}

/// The specification, one block at a time, without speculation.
fn oracle(
    mode: Mode,
    row: &[f32],
    segs: &[(usize, usize)],
    inv_tau: f32,
) -> (kernel::PassOut, Vec<BlockRec>) {
    let mut m = f32::NEG_INFINITY;
    let mut argmax = 0;
    let mut nan = false;
    let mut t1 = [f32::NEG_INFINITY; LANES];
    let mut t2 = [f32::NEG_INFINITY; LANES];
    let mut recs = Vec::new();
    for &(a, b) in segs {
        let mut start = a;
        while start < b {
            let end = (start + BLOCK).min(b);
            let xb = &row[start..end];
            let mut lm = [f32::NEG_INFINITY; LANES];
            for (k, &x) in xb.iter().enumerate() {
                let j = k % LANES;
                lm[j] = fmax(x, lm[j]);
                if mode.top2 {
                    t2[j] = fmax(fmin(x, t1[j]), t2[j]);
                    t1[j] = fmax(x, t1[j]);
                }
            }
            let mut w = lm;
            for half in [8, 4, 2, 1] {
                for j in 0..half {
                    w[j] = fmax(w[j], w[j + half]);
                }
            }
            let bm = w[0];
            if bm > m {
                m = bm;
                argmax = start + xb.iter().position(|&x| x == bm).unwrap();
            }
            if bm == f32::NEG_INFINITY {
                nan |= xb.iter().any(|x| x.is_nan());
                start = end;
                continue;
            }
            // Weights, then lane j of each pair of 16-id chunks summed in f32 (a missing
            // partner counts as 0) and added into f64 lane j.
            let weight = |k: usize| -> (f32, f32, f32) {
                let Some(&x) = xb.get(k) else {
                    return (0.0, 0.0, 0.0);
                };
                let y = x - m;
                let e = exp_nonpositive(y);
                let ey = e * if y >= EXP_CUTOFF { y } else { 0.0 };
                (e, ey, exp_nonpositive(y * inv_tau))
            };
            let (mut s, mut st, mut t) = ([0f64; LANES], [0f64; LANES], [0f64; LANES]);
            for q in 0..xb.len().div_ceil(2 * LANES) {
                for j in 0..LANES {
                    let (a, b) = (weight(2 * LANES * q + j), weight(2 * LANES * q + LANES + j));
                    s[j] += (a.0 + b.0) as f64;
                    t[j] += (a.1 + b.1) as f64;
                    st[j] += (a.2 + b.2) as f64;
                }
            }
            recs.push(BlockRec {
                m,
                start,
                len: end - start,
                s: sum_lanes(&s),
                st: if mode.temper { sum_lanes(&st) } else { 0.0 },
                t: if mode.entropy { sum_lanes(&t) } else { 0.0 },
            });
            start = end;
        }
    }
    let second = if mode.top2 {
        let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for &x in t1.iter().chain(t2.iter()) {
            if x > a {
                b = a;
                a = x;
            } else if x > b {
                b = x;
            }
        }
        b
    } else {
        f32::NEG_INFINITY
    };
    (
        kernel::PassOut {
            m,
            argmax,
            second,
            nan,
        },
        recs,
    )
}

struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn rows(v: usize, g: &mut Lcg) -> Vec<(&'static str, Vec<f32>)> {
    let random: Vec<f32> = (0..v).map(|_| 12.0 * g.unit() - 6.0).collect();
    let mut late_max = random.clone();
    late_max[v - 1] = 40.0;
    let mut holes = random.clone();
    for (k, x) in holes.iter_mut().enumerate() {
        if (k / BLOCK) % 3 == 1 {
            *x = f32::NEG_INFINITY;
        }
        if k % 97 == 5 {
            *x = -200.0; // below the exp cut-off
        }
    }
    let mut nan_block = random.clone();
    if v > BLOCK + 3 {
        for x in &mut nan_block[BLOCK..(2 * BLOCK).min(v)] {
            *x = f32::NEG_INFINITY;
        }
        nan_block[BLOCK + 3] = f32::NAN;
    }
    let mut ties = vec![0.0f32; v];
    for (k, x) in ties.iter_mut().enumerate() {
        if k % 5 == 0 {
            *x = -0.0;
        }
        if k % 7 == 3 {
            *x = -3.0;
        }
    }
    vec![
        ("random", random),
        (
            "increasing",
            (0..v).map(|k| k as f32 * 1e-3 - 2.0).collect(),
        ),
        (
            "decreasing",
            (0..v).map(|k| 3.0 - k as f32 * 1e-3).collect(),
        ),
        ("late max", late_max),
        ("holes", holes),
        ("NaN in a −∞ block", nan_block),
        ("signed-zero ties", ties),
    ]
}

#[test]
fn the_speculative_pass_equals_the_specification_bit_for_bit() {
    let mut g = Lcg(11);
    let mut blocks = Vec::new();
    for v in [1usize, 16, 17, 255, 256, 257, 1000, 4099] {
        let excl: Vec<u32> = if v > 600 {
            vec![3, 4, 300, 301, 599]
        } else {
            vec![]
        };
        let segs = segments(&excl, v);
        for (name, row) in rows(v, &mut g) {
            for bits in 0..8u8 {
                let mode = Mode {
                    temper: bits & 1 != 0,
                    entropy: bits & 2 != 0,
                    top2: bits & 4 != 0,
                };
                let inv_tau = if mode.temper { 1.0 / 0.7 } else { 1.0 };
                let (want, want_recs) = oracle(mode, &row, &segs, inv_tau);
                for level in Simd::available() {
                    let got = kernel::pass(level, mode, &row, &segs, inv_tau, &mut blocks);
                    let at = format!("{name} V {v} {mode:?} {level:?}");
                    assert_eq!(got.m.to_bits(), want.m.to_bits(), "m: {at}");
                    assert_eq!(got.argmax, want.argmax, "argmax: {at}");
                    assert_eq!(got.second.to_bits(), want.second.to_bits(), "second: {at}");
                    assert_eq!(got.nan, want.nan, "nan: {at}");
                    assert_eq!(blocks.len(), want_recs.len(), "blocks: {at}");
                    for (k, (b, w)) in blocks.iter().zip(&want_recs).enumerate() {
                        let same = b.m.to_bits() == w.m.to_bits()
                            && b.start == w.start
                            && b.len == w.len
                            && [b.s, b.st, b.t].iter().zip([w.s, w.st, w.t]).all(|(x, y)| {
                                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
                            });
                        assert!(same, "block {k}: {b:?} vs {w:?}: {at}");
                    }
                }
            }
        }
    }
}
