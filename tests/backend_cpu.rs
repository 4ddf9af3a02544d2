//! Behaviour tests for `backend::cpu`: the fast `exp` and its measured error, agreement
//! with the `f64` `ReferenceBackend` within tolerances derived from that error (sampled
//! tokens identical except at inverse-CDF boundaries, counted and bounded), χ² goodness of
//! fit of the draws, determinism across thread counts, batch permutations and instruction
//! sets, the selection mask, strided input and bad input.

use discrete_diffusion::Error;
use discrete_diffusion::backend::cpu::exp::{EXP_CUTOFF, EXP_MAX_REL_ERROR, exp_nonpositive};
use discrete_diffusion::backend::cpu::{CpuBackend, Simd};
use discrete_diffusion::backend::{Backend, BatchRng, ReferenceBackend, RowSpec, RowSummary};
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use ndarray::{Array2, Array3, ArrayView3, Axis, s};
use statrs::distribution::{ChiSquared, ContinuousCDF};

const NEG: f32 = f32::NEG_INFINITY;
/// `2⁻²⁴`: the relative rounding of an `f32` subtraction or product.
const U32: f64 = 5.960_464_477_539_063e-8;
/// Significance level of the χ² tests.
const ALPHA: f64 = 1e-3;

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

struct Gen(CounterRng);

impl Gen {
    fn new(stream: u64) -> Self {
        Gen(CounterRng::new(
            RngKey::for_stream(0xC0FFEE, stream),
            Purpose::USER,
            0,
            0,
        ))
    }
    fn uniform(&mut self) -> f64 {
        self.0.uniform()
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.0.uniform_open();
        let u2 = self.0.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    /// `[B, L, V]` logits: rows of `σ·N(0,1)` with `σ` varying by row, about 3% `−∞`
    /// entries, and every 7th row extreme (`±1e4` entries mixed in).
    fn logits(&mut self, b: usize, l: usize, v: usize) -> Array3<f32> {
        let mut x = Array3::<f32>::zeros((b, l, v));
        for (r, mut row) in x.lanes_mut(Axis(2)).into_iter().enumerate() {
            let sigma = [0.1, 1.0, 3.0, 10.0][r % 4];
            for e in row.iter_mut() {
                let z = self.uniform();
                *e = if z < 0.03 {
                    NEG
                } else if r % 7 == 3 && z < 0.06 {
                    if z < 0.045 { 1e4 } else { -1e4 }
                } else {
                    (sigma * self.normal()) as f32
                };
            }
            // Keep at least one finite entry outside the excluded ids used below.
            row[v / 3] = (sigma * self.normal()) as f32;
        }
        x
    }
}

fn rng(streams: &[u64]) -> BatchRng<'_> {
    BatchRng {
        seed: 0xD1FF,
        streams,
        step: 3,
        purpose: Purpose::CATEGORICAL,
    }
}

fn run(
    be: &dyn Backend,
    x: ArrayView3<'_, f32>,
    spec: &RowSpec,
    streams: &[u64],
) -> Array2<RowSummary> {
    let (b, l, _) = x.dim();
    let mut out = Array2::from_elem((b, l), RowSummary::default());
    be.summarize(x, None, spec, &rng(streams), out.view_mut())
        .unwrap();
    out
}

fn bits(s: &RowSummary) -> [u64; 7] {
    [
        s.argmax as u64,
        s.max.to_bits() as u64,
        s.logsumexp.to_bits(),
        s.margin.to_bits(),
        s.entropy.to_bits(),
        s.token as u64,
        s.token_logprob.to_bits(),
    ]
}

fn assert_identical(a: &Array2<RowSummary>, b: &Array2<RowSummary>, what: &str) {
    for (k, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        assert_eq!(bits(x), bits(y), "{what}: row {k}: {x:?} vs {y:?}");
    }
}

fn spec(temperature: f64, excluded: Vec<u32>) -> RowSpec {
    RowSpec {
        temperature,
        excluded,
        entropy: true,
        margin: true,
    }
}

// ---------------------------------------------------------------------------------------
// exp
// ---------------------------------------------------------------------------------------

/// The maximal relative error of `exp_nonpositive` against the `f64` `exp`, over every
/// 37th `f32` of the domain `[EXP_CUTOFF, 0]` (≈ 3.6·10⁷ points, all binades) and the
/// edges; documented as `EXP_MAX_REL_ERROR`.
#[test]
fn exp_max_relative_error_over_the_domain() {
    let lo = EXP_CUTOFF.to_bits(); // sign bit set: larger bits are more negative
    let mut worst = (0f64, 0f32);
    let mut check = |y: f32| {
        let want = (y as f64).exp();
        let rel = (exp_nonpositive(y) as f64 / want - 1.0).abs();
        if rel > worst.0 {
            worst = (rel, y);
        }
    };
    let mut b = 0x8000_0000u32;
    while b <= lo {
        check(f32::from_bits(b));
        b += 37;
    }
    for y in [
        0.0,
        -0.0,
        EXP_CUTOFF,
        -f32::MIN_POSITIVE,
        -1e-45,
        -0.346_573_6,
        -0.346_573_64,
    ] {
        check(y);
    }
    eprintln!(
        "exp_nonpositive: max relative error {:.3e} at y = {} ({:.2} f32 ulp)",
        worst.0,
        worst.1,
        worst.0 / U32 / 2.0
    );
    assert!(worst.0 <= EXP_MAX_REL_ERROR, "{worst:?}");
    assert_eq!(exp_nonpositive(0.0), 1.0);
    assert_eq!(exp_nonpositive(NEG), 0.0);
    assert_eq!(exp_nonpositive(EXP_CUTOFF - 1e-5), 0.0);
    assert!(exp_nonpositive(f32::NAN).is_nan());
}

// ---------------------------------------------------------------------------------------
// Agreement with the reference
// ---------------------------------------------------------------------------------------

/// Per-row exact quantities in `f64` (excluded ids at `−∞`).
struct Exact {
    /// `E_p|ℓ − m|`, `E_p(ℓ − m)²` of the untempered softmax.
    a: f64,
    b: f64,
    /// The tempered CDF.
    cdf: Vec<f64>,
    /// `E_q|(ℓ − m)/τ|` of the tempered softmax.
    a_tau: f64,
}

fn exact(row: &[f32], excluded: &[u32], tau: f64) -> Exact {
    let x: Vec<f64> = row
        .iter()
        .enumerate()
        .map(|(k, &l)| {
            if excluded.contains(&(k as u32)) {
                f64::NEG_INFINITY
            } else {
                l as f64
            }
        })
        .collect();
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = x.iter().map(|&l| (l - m).exp()).collect();
    let z: f64 = w.iter().sum();
    let mut a = 0.0;
    let mut b = 0.0;
    for (&l, &wk) in x.iter().zip(&w) {
        if wk > 0.0 {
            let y = l - m;
            a += wk / z * y.abs();
            b += wk / z * y * y;
        }
    }
    let t = if tau > 0.0 { tau } else { 1.0 };
    let wt: Vec<f64> = x.iter().map(|&l| ((l - m) / t).exp()).collect();
    let zt: f64 = wt.iter().sum();
    let mut cdf = Vec::with_capacity(x.len());
    let mut c = 0.0;
    let mut a_tau = 0.0;
    for (&l, &wk) in x.iter().zip(&wt) {
        c += wk / zt;
        cdf.push(c);
        if wk > 0.0 {
            a_tau += wk / zt * ((l - m) / t).abs();
        }
    }
    Exact { a, b, cdf, a_tau }
}

/// Compares CPU with the reference on one input; returns (rows, token disagreements,
/// the bound on the expected number of disagreements).
fn compare(x: &Array3<f32>, spec: &RowSpec, streams: &[u64]) -> (usize, usize, f64) {
    let cpu = run(&CpuBackend::new(), x.view(), spec, streams);
    let re = run(&ReferenceBackend, x.view(), spec, streams);
    // Per-weight relative error: the exp's, plus the f32 addition of each pair of weights
    // before the f64 accumulation (`backend::cpu`, numerics).
    let d = EXP_MAX_REL_ERROR + U32;
    let (bb, l, _) = x.dim();
    let mut disagree = 0;
    let mut expected = 0.0;
    for b in 0..bb {
        for i in 0..l {
            let (c, r) = (cpu[[b, i]], re[[b, i]]);
            let row = x.slice(s![b, i, ..]).to_vec();
            let ex = exact(&row, &spec.excluded, spec.temperature);
            let at = format!(
                "V {} τ {} row ({b},{i}): cpu {c:?} ref {r:?}",
                row.len(),
                spec.temperature
            );
            assert_eq!(c.argmax, r.argmax, "{at}");
            assert_eq!(c.max, r.max, "{at}");
            let eps64 = 8.0 * f64::EPSILON * (1.0 + r.logsumexp.abs());
            let rel_s = d + U32 * ex.a;
            let tol_lse = 1.01 * rel_s + eps64;
            assert!((c.logsumexp - r.logsumexp).abs() <= tol_lse, "lse {at}");
            assert!(
                (c.margin - r.margin).abs() <= 1.01 * rel_s * r.margin + 1e-14,
                "margin {at}"
            );
            let tol_h =
                1.1 * (d * (1.0 + 2.0 * ex.a) + U32 * (3.0 * ex.a + ex.a * ex.a + ex.b)) + 1e-12;
            assert!((c.entropy - r.entropy).abs() <= tol_h, "entropy {at}");
            if spec.temperature == 0.0 {
                assert_eq!(c.token, c.argmax, "{at}");
            }
            if c.token == r.token {
                assert!(
                    (c.token_logprob - r.token_logprob).abs() <= tol_lse + eps64,
                    "{at}"
                );
                continue;
            }
            // A disagreement: the uniform must lie within the CDF perturbation of the
            // boundary between the two tokens.
            disagree += 1;
            let u = rng(streams).uniform(RngKey::for_stream(0xD1FF, streams[b]), i);
            let eps_w = d + 3.0 * U32 * ex.a_tau;
            let tol_u = 2.2 * eps_w + 1e-12;
            let (a, t) = (r.token as usize, c.token as usize);
            let gap = if t > a { ex.cdf[a] - u } else { u - ex.cdf[t] };
            assert!(
                (-1e-12..=tol_u).contains(&gap),
                "token disagreement away from a boundary (gap {gap:e} > {tol_u:e}): {at}"
            );
        }
    }
    // Expected disagreements: Σ_rows Σ_k |η_k| with |η_k| ≤ 2 ε F_k (1 − F_k).
    for b in 0..bb {
        for i in 0..l {
            let row = x.slice(s![b, i, ..]).to_vec();
            let ex = exact(&row, &spec.excluded, spec.temperature);
            if spec.temperature > 0.0 {
                let eps_w = d + 3.0 * U32 * ex.a_tau;
                expected += ex
                    .cdf
                    .iter()
                    .map(|&f| 2.0 * eps_w * f * (1.0 - f).max(0.0))
                    .sum::<f64>();
            }
        }
    }
    (bb * l, disagree, expected)
}

#[test]
fn matches_the_reference() {
    let mut g = Gen::new(1);
    let mut total = (0usize, 0usize, 0f64);
    for (v, rows) in [
        (2usize, 600usize),
        (4, 600),
        (25, 400),
        (1000, 120),
        (32768, 24),
    ] {
        let (b, l) = (3, rows / 3);
        let x = g.logits(b, l, v);
        let mask = (v / 2) as u32; // a mask id in the middle, never assumed last
        let excluded: Vec<Vec<u32>> = if v == 2 {
            vec![vec![], vec![1]]
        } else {
            vec![vec![], vec![mask], vec![mask, 0, (v - 1) as u32, mask]]
        };
        let streams: Vec<u64> = (0..b as u64).map(|k| 100 + 7 * k).collect();
        for ex in &excluded {
            for tau in [0.0, 0.5, 1.0, 2.0] {
                let (n, dis, exp) = compare(&x, &spec(tau, ex.clone()), &streams);
                eprintln!(
                    "V {v:5} τ {tau} excluded {ex:?}: {dis} token disagreements in {n} rows (bound on the expectation {exp:.2e})"
                );
                total = (total.0 + n, total.1 + dis, total.2 + exp);
            }
        }
    }
    eprintln!(
        "total: {} disagreements in {} rows, expected ≤ {:.2e}",
        total.1, total.0, total.2
    );
    // Poisson with mean ≤ total.2: P(X ≥ 3 + 5μ) is negligible for the μ ≪ 1 here.
    assert!(
        (total.1 as f64) <= 3.0 + 5.0 * total.2,
        "{} disagreements, expected ≤ {}",
        total.1,
        total.2
    );
}

/// Rows built so that a CDF boundary sits on the row's uniform (up to the `f32` rounding
/// of the logits): here the CPU and the reference do disagree, and `compare` checks that
/// each disagreement is within the derived CDF perturbation of that boundary.
#[test]
fn disagreements_happen_only_at_cdf_boundaries() {
    let (b, l) = (2, 500);
    let streams = [21u64, 22];
    let mut x = Array3::<f32>::zeros((b, l, 3));
    for bi in 0..b {
        for i in 0..l {
            let u = rng(&streams).uniform(RngKey::for_stream(0xD1FF, streams[bi]), i);
            // p = (u, (1 − u)/2, (1 − u)/2): the boundary F(0) = u.
            x[[bi, i, 0]] = u.ln() as f32;
            x[[bi, i, 1]] = ((1.0 - u) / 2.0).ln() as f32;
            x[[bi, i, 2]] = ((1.0 - u) / 2.0).ln() as f32;
        }
    }
    let (n, dis, _) = compare(&x, &spec(1.0, vec![]), &streams);
    eprintln!("adversarial rows: {dis} boundary disagreements in {n} rows");
    assert!(
        dis > 0,
        "the adversarial rows should exercise the boundary check"
    );
}

#[test]
fn extreme_and_degenerate_rows_match_the_reference() {
    let v = 40;
    let mut x = Array3::<f32>::from_elem((1, 6, v), NEG);
    // One finite entry.
    x[[0, 0, 7]] = 1e4;
    // Two tied maxima at ±1e4 scale.
    for k in 0..v {
        x[[0, 1, k]] = if k % 2 == 0 { 1e4 } else { -1e4 };
    }
    // All equal.
    x.slice_mut(s![0, 2, ..]).fill(-1e4);
    // Large spread.
    for k in 0..v {
        x[[0, 3, k]] = -1e4 + 500.0 * k as f32;
    }
    // Tiny differences.
    for k in 0..v {
        x[[0, 4, k]] = 1.0 + k as f32 * 1e-7;
    }
    // Only the excluded id is finite besides one.
    x[[0, 5, 3]] = 5.0;
    x[[0, 5, 20]] = -3.0;
    for tau in [0.0, 1e-30, 0.5, 1.0, 2.0, 1e30] {
        let sp = spec(tau, vec![3]);
        let c = run(&CpuBackend::new(), x.view(), &sp, &[1]);
        let r = run(&ReferenceBackend, x.view(), &sp, &[1]);
        for i in 0..6 {
            let (c, r) = (c[[0, i]], r[[0, i]]);
            assert_eq!(c.argmax, r.argmax, "τ {tau} row {i}");
            assert!((c.logsumexp - r.logsumexp).abs() <= 1e-6 + 1e-15 * r.logsumexp.abs());
            assert!(
                (c.entropy - r.entropy).abs() <= 1e-5,
                "τ {tau} row {i}: {c:?} {r:?}"
            );
            assert!((c.margin - r.margin).abs() <= 1e-6);
            assert_ne!(c.token, 3);
            if i == 0 || i == 5 {
                assert_eq!(c.token, c.argmax);
            }
        }
        if tau == 0.0 {
            assert_eq!(c[[0, 1]].margin, 0.0);
            assert_eq!(c[[0, 2]].argmax, 0);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Distribution of the draws
// ---------------------------------------------------------------------------------------

#[test]
fn draws_fit_the_tempered_softmax() {
    for (v, tau, excluded) in [
        (4usize, 1.0, vec![]),
        (4, 0.5, vec![2u32]),
        (25, 1.0, vec![]),
        (25, 2.0, vec![0, 13]),
    ] {
        let mut g = Gen::new(40 + v as u64);
        let logits: Vec<f32> = (0..v).map(|_| g.normal() as f32).collect();
        let (b, l) = (4, 10_000);
        let x = Array3::from_shape_fn((b, l, v), |(_, _, k)| logits[k]);
        let streams = [5, 6, 7, 8];
        let out = run(
            &CpuBackend::new(),
            x.view(),
            &spec(tau, excluded.clone()),
            &streams,
        );
        let mut counts = vec![0u64; v];
        for s in out.iter() {
            counts[s.token as usize] += 1;
        }
        let w: Vec<f64> = (0..v)
            .map(|k| {
                if excluded.contains(&(k as u32)) {
                    0.0
                } else {
                    (logits[k] as f64 / tau).exp()
                }
            })
            .collect();
        let z: f64 = w.iter().sum();
        let n = (b * l) as f64;
        let mut stat = 0.0;
        let mut cells = 0;
        for (k, (&c, &wk)) in counts.iter().zip(&w).enumerate() {
            if wk == 0.0 {
                assert_eq!(c, 0, "excluded id {k} drawn");
                continue;
            }
            let e = n * wk / z;
            assert!(e >= 5.0);
            stat += (c as f64 - e).powi(2) / e;
            cells += 1;
        }
        let crit = ChiSquared::new((cells - 1) as f64)
            .unwrap()
            .inverse_cdf(1.0 - ALPHA);
        assert!(stat < crit, "V {v} τ {tau}: χ² {stat:.2} ≥ {crit:.2}");
    }
}

// ---------------------------------------------------------------------------------------
// Determinism
// ---------------------------------------------------------------------------------------

#[test]
fn thread_count_does_not_change_results() {
    let mut g = Gen::new(2);
    for v in [25usize, 4099] {
        let x = g.logits(4, 37, v);
        let streams = [9, 8, 7, 6];
        for sp in [spec(0.7, vec![1]), spec(1.0, vec![]), spec(0.0, vec![3])] {
            let one = run(
                &CpuBackend::with_threads(1).unwrap(),
                x.view(),
                &sp,
                &streams,
            );
            for t in [2, 4] {
                let many = run(
                    &CpuBackend::with_threads(t).unwrap(),
                    x.view(),
                    &sp,
                    &streams,
                );
                assert_identical(&one, &many, &format!("{t} threads V {v}"));
            }
            let global = run(&CpuBackend::new(), x.view(), &sp, &streams);
            assert_identical(&one, &global, "global pool");
        }
    }
}

#[test]
fn batch_permutation_does_not_change_results() {
    let mut g = Gen::new(3);
    let x = g.logits(5, 20, 1000);
    let streams = [11u64, 22, 33, 44, 55];
    let perm = [3usize, 0, 4, 1, 2];
    let xp = ndarray::stack(
        Axis(0),
        &perm
            .iter()
            .map(|&p| x.index_axis(Axis(0), p))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let sp_streams: Vec<u64> = perm.iter().map(|&p| streams[p]).collect();
    let sp = spec(1.3, vec![500]);
    let a = run(&CpuBackend::new(), x.view(), &sp, &streams);
    let b = run(&CpuBackend::new(), xp.view(), &sp, &sp_streams);
    for (k, &p) in perm.iter().enumerate() {
        for i in 0..20 {
            assert_eq!(bits(&a[[p, i]]), bits(&b[[k, i]]));
        }
    }
}

#[test]
fn every_instruction_set_gives_identical_bits() {
    let levels = Simd::available();
    eprintln!("instruction sets on this machine: {levels:?}");
    assert_eq!(levels[0], Simd::Portable);
    assert!(levels.contains(&Simd::best()));
    let mut g = Gen::new(4);
    for v in [2usize, 25, 1000, 4097, 32768] {
        let x = g.logits(2, 9, v);
        for sp in [
            spec(0.0, vec![]),
            spec(1.0, vec![(v / 2) as u32]),
            spec(0.37, vec![(v - 1) as u32]),
            RowSpec {
                temperature: 1.0,
                ..RowSpec::default()
            },
            RowSpec {
                temperature: 3.0,
                entropy: true,
                ..RowSpec::default()
            },
        ] {
            let base = run(
                &CpuBackend::new().with_simd(Simd::Portable).unwrap(),
                x.view(),
                &sp,
                &[1, 2],
            );
            for &lv in &levels[1..] {
                let o = run(
                    &CpuBackend::new().with_simd(lv).unwrap(),
                    x.view(),
                    &sp,
                    &[1, 2],
                );
                assert_identical(&base, &o, &format!("{lv:?} V {v} {sp:?}"));
            }
        }
    }
    // Asking for an unavailable level is an error, not a crash.
    for lv in [Simd::Avx2, Simd::Avx512] {
        assert_eq!(CpuBackend::new().with_simd(lv).is_ok(), lv.is_available());
    }
}

// ---------------------------------------------------------------------------------------
// Selection, layout, bad input
// ---------------------------------------------------------------------------------------

#[test]
fn selection_mask_is_respected_and_unselected_rows_are_not_read() {
    let mut g = Gen::new(5);
    let (b, l, v) = (3, 17, 300);
    let x = g.logits(b, l, v);
    let sel = Array2::from_shape_fn((b, l), |(bi, i)| (bi + i) % 3 != 0);
    let mut poisoned = x.clone();
    for ((bi, i), &on) in sel.indexed_iter() {
        if !on {
            poisoned.slice_mut(s![bi, i, ..]).fill(f32::NAN);
        }
    }
    let sp = spec(0.9, vec![2]);
    let full = run(&CpuBackend::new(), x.view(), &sp, &[1, 2, 3]);
    let sentinel = RowSummary {
        argmax: 12345,
        token: 54321,
        ..RowSummary::default()
    };
    let mut out = Array2::from_elem((b, l), sentinel);
    CpuBackend::new()
        .summarize(
            poisoned.view(),
            Some(sel.view()),
            &sp,
            &rng(&[1, 2, 3]),
            out.view_mut(),
        )
        .unwrap();
    for ((bi, i), &on) in sel.indexed_iter() {
        if on {
            assert_eq!(bits(&out[[bi, i]]), bits(&full[[bi, i]]));
        } else {
            assert_eq!(out[[bi, i]], sentinel);
        }
    }
    // Nothing selected: nothing written.
    let none = Array2::from_elem((b, l), false);
    let mut out2 = Array2::from_elem((b, l), sentinel);
    CpuBackend::new()
        .summarize(
            poisoned.view(),
            Some(none.view()),
            &sp,
            &rng(&[1, 2, 3]),
            out2.view_mut(),
        )
        .unwrap();
    assert!(out2.iter().all(|s| *s == sentinel));
}

#[test]
fn strided_input_gives_the_same_results() {
    let mut g = Gen::new(6);
    let x = g.logits(2, 5, 700);
    // The same logical tensor stored as [V, L, B] and viewed transposed (non-contiguous rows).
    let stored = Array3::from_shape_fn((700, 5, 2), |(k, i, b)| x[[b, i, k]]);
    let strided = stored.view().reversed_axes();
    assert_eq!(strided, x.view());
    assert!(strided.slice(s![0, 0, ..]).to_slice().is_none());
    let sp = spec(1.0, vec![4]);
    let a = run(&CpuBackend::new(), x.view(), &sp, &[3, 4]);
    let b = run(&CpuBackend::new(), strided, &sp, &[3, 4]);
    assert_identical(&a, &b, "strided");
    // A non-contiguous output view is fine too.
    let mut big = Array2::from_elem((2, 10), RowSummary::default());
    CpuBackend::new()
        .summarize(
            x.view(),
            None,
            &sp,
            &rng(&[3, 4]),
            big.slice_mut(s![.., ..;2]),
        )
        .unwrap();
    for bi in 0..2 {
        for i in 0..5 {
            assert_eq!(bits(&big[[bi, 2 * i]]), bits(&a[[bi, i]]));
        }
    }
}

#[test]
fn bad_input_gives_the_reference_errors() {
    let x = Array3::<f32>::zeros((2, 3, 4));
    let mut out = Array2::from_elem((2, 3), RowSummary::default());
    let good = spec(1.0, vec![]);
    /// (logits, spec, streams, out shape)
    type Case = (Array3<f32>, RowSpec, Vec<u64>, (usize, usize));
    let cases: Vec<Case> = {
        let mut nan = x.clone();
        nan[[1, 2, 0]] = f32::NAN;
        let mut nan_excluded = x.clone();
        nan_excluded[[0, 1, 3]] = f32::NAN;
        let mut pinf = x.clone();
        pinf[[0, 2, 1]] = f32::INFINITY;
        pinf[[1, 0, 2]] = f32::NAN;
        let mut nan_in_dead_row = Array3::<f32>::from_elem((2, 3, 4), NEG);
        nan_in_dead_row[[0, 0, 2]] = f32::NAN;
        let mut dead = x.clone();
        dead.slice_mut(s![1, 1, ..]).fill(NEG);
        vec![
            (x.clone(), spec(-1.0, vec![]), vec![0, 1], (2, 3)),
            (x.clone(), spec(f64::NAN, vec![]), vec![0, 1], (2, 3)),
            (x.clone(), spec(f64::INFINITY, vec![]), vec![0, 1], (2, 3)),
            (x.clone(), spec(1.0, vec![4]), vec![0, 1], (2, 3)),
            (x.clone(), good.clone(), vec![0], (2, 3)),
            (x.clone(), good.clone(), vec![0, 1], (2, 2)),
            (Array3::zeros((2, 3, 1)), good.clone(), vec![0, 1], (2, 3)),
            (Array3::zeros((0, 3, 4)), good.clone(), vec![], (0, 3)),
            (nan, good.clone(), vec![0, 1], (2, 3)),
            (nan_excluded, spec(0.0, vec![3]), vec![0, 1], (2, 3)),
            (pinf, good.clone(), vec![0, 1], (2, 3)),
            (nan_in_dead_row, good.clone(), vec![0, 1], (2, 3)),
            (dead, good.clone(), vec![0, 1], (2, 3)),
            (x.clone(), spec(1.0, vec![0, 1, 2, 3]), vec![0, 1], (2, 3)),
        ]
    };
    for (k, (xx, sp, streams, od)) in cases.iter().enumerate() {
        let mut o1 = Array2::from_elem(*od, RowSummary::default());
        let mut o2 = o1.clone();
        let e_cpu = CpuBackend::new()
            .summarize(xx.view(), None, sp, &rng(streams), o1.view_mut())
            .unwrap_err();
        let e_ref = ReferenceBackend
            .summarize(xx.view(), None, sp, &rng(streams), o2.view_mut())
            .unwrap_err();
        // (Debug strings: `NonFinite { value: NaN }` is not `==` to itself.)
        assert_eq!(format!("{e_cpu:?}"), format!("{e_ref:?}"), "case {k}");
    }
    // The NaN error points at the first offending logit, as the reference's does.
    let mut nan = x.clone();
    nan[[1, 2, 3]] = f32::NAN;
    nan[[1, 2, 1]] = f32::INFINITY;
    match CpuBackend::new().summarize(nan.view(), None, &good, &rng(&[0, 1]), out.view_mut()) {
        Err(Error::NonFinite { arg, index, value }) => {
            assert_eq!((arg, index), ("logits", (5 * 4) + 1));
            assert_eq!(value, f64::INFINITY);
        }
        other => panic!("{other:?}"),
    }
    assert!(CpuBackend::with_threads(0).is_err());
}

#[test]
fn api_reports_its_configuration() {
    let b = CpuBackend::with_threads(3).unwrap();
    assert_eq!(b.threads(), 3);
    assert_eq!(b.name(), "cpu");
    assert_eq!(b.simd(), Simd::best());
    assert!(CpuBackend::default().threads() >= 1);
}
