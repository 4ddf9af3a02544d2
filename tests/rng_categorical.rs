//! Behaviour tests for `rng::categorical`: goodness of fit (χ²), exact log-probabilities,
//! the 262,144-way tail test against an `f32` Gumbel foil, determinism and coupling, and
//! bad input for every public function.

use discrete_diffusion::Error;
use discrete_diffusion::math::{logsumexp, softmax_into};
use discrete_diffusion::rng::categorical::{
    Draw, sample_logits, sample_logits_inverse_cdf, sample_masses, sample_masses_race,
};
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey, u64_at, u64_to_open_unit_f64};
use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF};

/// Significance level of every statistical test in this file.
const ALPHA: f64 = 1e-4;
const NEG: f32 = f32::NEG_INFINITY;

fn key() -> RngKey {
    RngKey::for_stream(0x5eed_cafe, 17)
}

// ---------------------------------------------------------------------------------------
// Statistics helpers
// ---------------------------------------------------------------------------------------

/// Pearson χ² statistic over the categories with positive probability, and its degrees of
/// freedom; asserts that zero-probability categories were never drawn.
fn chi2(counts: &[u64], p: &[f64]) -> (f64, usize) {
    let n: u64 = counts.iter().sum();
    let mut stat = 0.0;
    let mut cats = 0;
    for (i, (&c, &pi)) in counts.iter().zip(p).enumerate() {
        if pi == 0.0 {
            assert_eq!(c, 0, "zero-probability category {i} was drawn {c} times");
            continue;
        }
        let e = n as f64 * pi;
        stat += (c as f64 - e).powi(2) / e;
        cats += 1;
    }
    (stat, cats - 1)
}

fn assert_chi2(name: &str, counts: &[u64], p: &[f64]) {
    let (stat, df) = chi2(counts, p);
    let critical = ChiSquared::new(df as f64).unwrap().inverse_cdf(1.0 - ALPHA);
    assert!(
        stat < critical,
        "{name}: χ² = {stat:.2} ≥ critical {critical:.2} (df {df}, α {ALPHA})\ncounts {counts:?}"
    );
}

/// Two-sided acceptance region `[lo, hi]` of a Binomial(n, p) count at level `alpha`:
/// `P(X < lo) ≤ α/2` and `P(X > hi) ≤ α/2`, each as large as possible.
fn binomial_acceptance(n: u64, p: f64, alpha: f64) -> (u64, u64) {
    let b = Binomial::new(p, n).unwrap();
    let mut lo = 0;
    while b.cdf(lo) <= alpha / 2.0 {
        lo += 1;
    }
    let mut hi = n;
    while hi > 0 && b.sf(hi - 1) <= alpha / 2.0 {
        hi -= 1;
    }
    (lo, hi)
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let mut p = vec![0.0; logits.len()];
    softmax_into(logits, &mut p).unwrap();
    p
}

fn logits4() -> Vec<f32> {
    vec![0.7, -0.4, NEG, 1.3]
}

/// 25 states spanning a probability ratio of ~e^6, one impossible.
fn logits25() -> Vec<f32> {
    (0..25)
        .map(|i| {
            if i == 7 {
                NEG
            } else {
                2.5 * (1.7 * i as f32).sin() + 0.3 * (i % 3) as f32
            }
        })
        .collect()
}

fn assert_log_prob_of_logits(d: Draw, logits: &[f32], lse: f64) {
    let want = logits[d.token as usize] as f64 - lse;
    assert!(
        (d.log_prob - want).abs() <= 1e-13 * (1.0 + want.abs()),
        "log_prob {} vs {want}",
        d.log_prob
    );
}

fn assert_log_prob_of_masses(d: Draw, masses: &[f64]) {
    let total: f64 = masses.iter().sum();
    let want = masses[d.token as usize].ln() - total.ln();
    assert!(
        (d.log_prob - want).abs() <= 1e-13 * (1.0 + want.abs()),
        "log_prob {} vs {want}",
        d.log_prob
    );
}

// ---------------------------------------------------------------------------------------
// Goodness of fit
// ---------------------------------------------------------------------------------------

const N_FIT: u32 = 100_000;

#[test]
fn race_goodness_of_fit_and_log_prob() {
    for logits in [logits4(), logits25()] {
        let p = softmax(&logits);
        let lse = logsumexp(&logits).unwrap();
        let mut counts = vec![0u64; logits.len()];
        for n in 0..N_FIT {
            let mut rng = CounterRng::new(key(), Purpose::CATEGORICAL, 0, n);
            let d = sample_logits(&logits, &mut rng).unwrap();
            assert_log_prob_of_logits(d, &logits, lse);
            counts[d.token as usize] += 1;
        }
        assert_chi2(&format!("race V={}", logits.len()), &counts, &p);
    }
}

#[test]
fn inverse_cdf_goodness_of_fit_and_log_prob() {
    for logits in [logits4(), logits25()] {
        let p = softmax(&logits);
        let lse = logsumexp(&logits).unwrap();
        let mut counts = vec![0u64; logits.len()];
        for n in 0..N_FIT {
            let u = CounterRng::new(key(), Purpose::CATEGORICAL, 1, n).uniform();
            let d = sample_logits_inverse_cdf(&logits, u).unwrap();
            assert_log_prob_of_logits(d, &logits, lse);
            counts[d.token as usize] += 1;
        }
        assert_chi2(&format!("inverse CDF V={}", logits.len()), &counts, &p);
    }
}

#[test]
fn masses_goodness_of_fit_and_log_prob() {
    // Unnormalised masses at extreme scales, with a zero mass.
    for (logits, scale) in [(logits4(), 3.7e-250), (logits25(), 2.5e250)] {
        let p = softmax(&logits);
        let masses: Vec<f64> = p.iter().map(|x| x * scale).collect();
        let mut inv = vec![0u64; masses.len()];
        let mut race = vec![0u64; masses.len()];
        for n in 0..N_FIT {
            let u = CounterRng::new(key(), Purpose::CATEGORICAL, 2, n).uniform();
            let d = sample_masses(&masses, u).unwrap();
            assert_log_prob_of_masses(d, &masses);
            inv[d.token as usize] += 1;
            let mut rng = CounterRng::new(key(), Purpose::CATEGORICAL, 3, n);
            let d = sample_masses_race(&masses, &mut rng).unwrap();
            assert_log_prob_of_masses(d, &masses);
            race[d.token as usize] += 1;
        }
        assert_chi2(&format!("masses V={}", masses.len()), &inv, &p);
        assert_chi2(&format!("masses race V={}", masses.len()), &race, &p);
    }
}

/// With stratified uniforms `u_k = (k + ½)/M` the inverse-CDF samplers are deterministic
/// quadrature: each count is within 1 of `M · p_i`, and the draw is monotone in `u`.
#[test]
fn inverse_cdf_is_exact_quadrature_and_monotone() {
    const M: u32 = 100_000;
    let logits = logits25();
    let p = softmax(&logits);
    let masses: Vec<f64> = p.iter().map(|x| 7.0 * x).collect();
    let mut c_logits = [0u64; 25];
    let mut c_masses = [0u64; 25];
    let (mut prev_l, mut prev_m) = (0, 0);
    for k in 0..M {
        let u = (k as f64 + 0.5) / M as f64;
        let tl = sample_logits_inverse_cdf(&logits, u).unwrap().token;
        let tm = sample_masses(&masses, u).unwrap().token;
        assert!(tl >= prev_l && tm >= prev_m, "not monotone in u at {u}");
        (prev_l, prev_m) = (tl, tm);
        c_logits[tl as usize] += 1;
        c_masses[tm as usize] += 1;
    }
    for i in 0..25 {
        let want = M as f64 * p[i];
        assert!(
            (c_logits[i] as f64 - want).abs() <= 1.0 + 1e-6,
            "{i}: {}",
            c_logits[i]
        );
        assert!(
            (c_masses[i] as f64 - want).abs() <= 1.0 + 1e-6,
            "{i}: {}",
            c_masses[i]
        );
    }
}

// ---------------------------------------------------------------------------------------
// The 262,144-way tail test
// ---------------------------------------------------------------------------------------
//
// Setting (after vLLM's regression test, vllm-project/vllm#43150): V = 2¹⁸ = 262,144
// states, one head token with logit 0 and V − 1 tail tokens sharing a logit ℓ_t far
// below it. In the race, element i arrives at E_i·e^{−ℓ_i}, so the tail wins iff
//     min_{i ∈ tail} E_i < x := e^{ℓ_t} · E_h,
// which for i.i.d. Exp(1) clocks has probability 1 − exp(−(V−1)·x). A sampler whose
// exponentials cannot resolve values as small as x never hits the tail.
//
// Reusing the head's random number. The unconditional version of this test needs
// thousands of rows (vLLM uses 10⁵): a row's tail can carry at most ≈ V·2⁻²⁴ = 1/64 of
// mass that an f32 sampler misses, and the head's own Exp(1) makes most rows
// uninformative. Instead, each row first reads the head's exponential E_h from the
// documented stream (element i of the race uses u64_at(key, purpose, step, position, i))
// and sets that row's tail logit to ℓ_t = ln(κ / E_h). Then x = κ in every row (up to the
// f32 rounding of ℓ_t, ~10⁻⁶ relative, which the test measures), the tail's 262,143
// numbers are still fresh, and each row's tail hit is Bernoulli(p) with
//     p = 1 − exp(−(V−1)·κ):
// N rows give a Binomial(N, p) count. κ = 0.9·2⁻²⁴ sits 10 % below the smallest
// exponential an f32 uniform can produce, so p = 1.396 % per row (close to the 1/64
// ceiling) and N = 1,024 rows give a mean of 14.3 hits.
//
// Foil: f32 Gumbel-max, u = k·2⁻²⁴ from 24 random bits, g = −ln(−ln u) in f32, winner
// argmax ℓ_i + g_i in f32 (head at index 0, so ties go to it), with the same per-row
// conditioning computed in f32 from its own head word: ℓ_t = ln κ − ln(−ln u_h). Its
// exponentials −ln u never fall below ≈ 2⁻²⁴ > κ, so it can never hit the tail.
// `f32_foil_cannot_hit_the_tail` proves this exhaustively over all 2²⁴ head words (and
// that g is nondecreasing, so the tail competes only through its largest word, whose law
// P(K ≤ k) = ((k+1)/2²⁴)^{V−1} the foil simulation samples by inversion instead of
// drawing 262,143 words).
//
// Power: the α = 10⁻⁴ acceptance region of Binomial(1024, 0.01396) is [lo, hi] with
// lo ≥ 1 (asserted), and the foil's count is 0 with probability 1, so the criterion
// rejects the foil with probability 1. (An f32 sampler without the conditioning fails the
// same way; the conditioning only makes each row as informative as a row can be.)

const TAIL_V: usize = 1 << 18;
const TAIL_HEAD: usize = TAIL_V / 2; // head mid-row: the race's running max moves to it
const TAIL_ROWS: u32 = 1024;
/// The per-row threshold `x = e^{ℓ_t} E_h`: 10 % below the f32 exponential's floor 2⁻²⁴.
const KAPPA: f64 = 0.9 / (1u64 << 24) as f64;

/// f32 Gumbel noise of the foil from a 24-bit word: u = k·2⁻²⁴, g = −ln(−ln u).
fn f32_gumbel(k: u32) -> f32 {
    let u = k as f32 * (1.0 / (1u32 << 24) as f32);
    -(-(u.ln())).ln()
}

/// The foil's tail-hit decision for head word `k_head` and largest tail word `k_tail`:
/// tail logit ln κ − ln(−ln u_h) (its conditioning, in f32), head logit 0.
fn foil_hits_tail(k_head: u32, k_tail: u32) -> bool {
    let g_head = f32_gumbel(k_head); // = −ln(E_h) in f32
    let tail_logit = KAPPA.ln() as f32 + g_head; // ln κ − ln E_h
    tail_logit + f32_gumbel(k_tail) > g_head
}

#[test]
fn f32_foil_cannot_hit_the_tail() {
    const W: u32 = 1 << 24;
    let mut prev = f32::NEG_INFINITY;
    for k in 0..W {
        let g = f32_gumbel(k);
        assert!(g >= prev, "f32 Gumbel decreases at k = {k}");
        prev = g;
    }
    assert!(
        (prev - 16.6355).abs() < 1e-3,
        "top of the f32 Gumbel: {prev}"
    );
    // g is nondecreasing, so the tail's best word is the top one: check every head word.
    for k_head in 0..W {
        assert!(
            !foil_hits_tail(k_head, W - 1),
            "foil can hit at k_head = {k_head}"
        );
    }
}

/// Runs `f(row)` for rows `0..n` on all cores and sums the results.
fn par_sum<T: std::iter::Sum<T> + Send>(n: u32, f: impl Fn(u32) -> T + Sync) -> T {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()) as u32;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || (t..n).step_by(threads as usize).map(f).sum::<T>())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

#[test]
fn tail_of_a_262144_way_categorical_is_hit_at_the_binomial_rate() {
    let n_tail = (TAIL_V - 1) as f64;
    let p = -(-n_tail * KAPPA).exp_m1();
    let (lo, hi) = binomial_acceptance(TAIL_ROWS as u64, p, ALPHA);
    assert!(
        lo >= 1,
        "the criterion must reject a sampler that never hits the tail"
    );

    // The crate's f64 race on full 262,144-way rows.
    thread_local! {
        static ROW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (hits, worst_rel) = par_sum(TAIL_ROWS, |r| {
        let head_u =
            u64_to_open_unit_f64(u64_at(key(), Purpose::CATEGORICAL, 0, r, TAIL_HEAD as u64));
        let e_head = -head_u.ln();
        assert!(e_head > 0.0);
        let lt = (KAPPA.ln() - e_head.ln()) as f32;
        // This row's exact hit probability, with ℓ_t rounded to f32.
        let p_row = -(-n_tail * (lt as f64).exp() * e_head).exp_m1();
        let d = ROW.with_borrow_mut(|logits| {
            logits.clear();
            logits.resize(TAIL_V, lt);
            logits[TAIL_HEAD] = 0.0;
            let mut rng = CounterRng::new(key(), Purpose::CATEGORICAL, 0, r);
            sample_logits(logits, &mut rng).unwrap()
        });
        let lse = (n_tail * (lt as f64).exp()).ln_1p();
        let want = if d.token as usize == TAIL_HEAD {
            -lse
        } else {
            lt as f64 - lse
        };
        assert!(
            (d.log_prob - want).abs() < 1e-12,
            "{} vs {want}",
            d.log_prob
        );
        Pair(
            (d.token as usize != TAIL_HEAD) as u64,
            (p_row / p - 1.0).abs(),
        )
    })
    .into();
    assert!(
        worst_rel < 1e-5,
        "rows' hit probabilities spread by {worst_rel:e}"
    );
    assert!(
        (lo..=hi).contains(&hits),
        "f64 race: {hits} tail hits in {TAIL_ROWS} rows, expected {:.2} (region [{lo}, {hi}])",
        TAIL_ROWS as f64 * p
    );

    // The f32 Gumbel foil under the same criterion.
    let foil_hits: u64 = (0..TAIL_ROWS)
        .map(|r| {
            let mut rng = CounterRng::new(key(), Purpose::USER, 0, r);
            let k_head = rng.next_u32() >> 8;
            // Largest of V − 1 uniform 24-bit words, by inversion of ((k+1)/2²⁴)^{V−1}.
            let v = rng.uniform_open();
            let top = (v.ln() / n_tail).exp() * (1u32 << 24) as f64;
            let k_tail = (top.ceil() as u32).clamp(1, 1 << 24) - 1;
            foil_hits_tail(k_head, k_tail) as u64
        })
        .sum();
    assert!(
        !(lo..=hi).contains(&foil_hits),
        "the f32 foil passed: {foil_hits} hits, region [{lo}, {hi}]"
    );
}

/// The inverse CDF resolves single tail tokens of a 262,144-way row: with per-token mass
/// `q ≈ 4·10⁻⁹ ≪ 2⁻²⁴`, `u` in the middle of token `j`'s CDF interval returns exactly `j`,
/// on both sides of a head in the middle of the row. An `f32` cumulative sum (the foil)
/// stalls once its running total's ulp exceeds `q` and misplaces these quantiles.
#[test]
fn inverse_cdf_resolves_single_tail_tokens_of_a_262144_way_row() {
    let lt: f32 = -19.3;
    let mut logits = vec![lt; TAIL_V];
    logits[TAIL_HEAD] = 0.0;
    let z = 1.0 + (TAIL_V - 1) as f64 * (lt as f64).exp();
    let (q, p_head) = ((lt as f64).exp() / z, 1.0 / z);
    let mid = |j: usize| {
        if j < TAIL_HEAD {
            (j as f64 + 0.5) * q
        } else if j == TAIL_HEAD {
            TAIL_HEAD as f64 * q + 0.5 * p_head
        } else {
            p_head + (j as f64 - 0.5) * q
        }
    };
    let probe = [
        0,
        1,
        7,
        1000,
        TAIL_HEAD - 1,
        TAIL_HEAD,
        TAIL_HEAD + 1,
        200_001,
        TAIL_V - 1,
    ];
    let mut f32_misplaced = 0;
    for j in probe {
        let d = sample_logits_inverse_cdf(&logits, mid(j)).unwrap();
        assert_eq!(d.token as usize, j, "u = {}", mid(j));
        // Foil: the same walk with an f32 running sum of f32 probabilities.
        let target = mid(j) as f32;
        let (mut c, mut got) = (0.0f32, TAIL_V - 1);
        for (i, &l) in logits.iter().enumerate() {
            c += ((l as f64).exp() / z) as f32;
            if c > target {
                got = i;
                break;
            }
        }
        f32_misplaced += (got != j) as u32;
    }
    assert!(
        f32_misplaced >= 3,
        "the f32 walk misplaced only {f32_misplaced} quantiles"
    );
}

/// (tail hits, largest relative deviation of a row's hit probability from `p`).
struct Pair(u64, f64);

impl std::iter::Sum for Pair {
    fn sum<I: Iterator<Item = Pair>>(iter: I) -> Pair {
        iter.fold(Pair(0, 0.0), |a, b| Pair(a.0 + b.0, a.1.max(b.1)))
    }
}

impl From<Pair> for (u64, f64) {
    fn from(p: Pair) -> Self {
        (p.0, p.1)
    }
}

// ---------------------------------------------------------------------------------------
// Determinism, the randomness contract, coupling
// ---------------------------------------------------------------------------------------

#[test]
fn same_address_same_draw_and_documented_stream() {
    let logits = logits25();
    let masses = softmax(&logits);
    for (step, pos) in [(0u32, 0u32), (3, 9), (u32::MAX, u32::MAX)] {
        let addr = || CounterRng::new(key(), Purpose::CATEGORICAL, step, pos);
        let a = sample_logits(&logits, &mut addr()).unwrap();
        assert_eq!(a, sample_logits(&logits, &mut addr()).unwrap());
        let b = sample_masses_race(&masses, &mut addr()).unwrap();
        assert_eq!(b, sample_masses_race(&masses, &mut addr()).unwrap());
        // Element i uses the i-th u64 at the address: argmax ℓ_i − ln E_i from u64_at.
        let reference = (0..logits.len())
            .map(|i| {
                let u =
                    u64_to_open_unit_f64(u64_at(key(), Purpose::CATEGORICAL, step, pos, i as u64));
                (i, logits[i] as f64 - (-u.ln()).ln())
            })
            .fold((0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b });
        assert_eq!(a.token as usize, reference.0);
        // Exactly one number per element was consumed, -inf entries included.
        let mut rng = addr();
        sample_logits(&logits, &mut rng).unwrap();
        let next = u64_at(key(), Purpose::CATEGORICAL, step, pos, logits.len() as u64);
        assert_eq!(rng.next_u64(), next);
    }
    // Other addresses give other draws (not all equal over many positions).
    let draws: Vec<u32> = (0..64)
        .map(|p| {
            let mut r = CounterRng::new(key(), Purpose::CATEGORICAL, 0, p);
            sample_logits(&logits, &mut r).unwrap().token
        })
        .collect();
    assert!(draws.iter().any(|&t| t != draws[0]));
}

#[test]
fn draws_do_not_depend_on_batch_order() {
    let logits = logits25();
    let draw = |p: u32| {
        let mut r = CounterRng::new(key(), Purpose::CATEGORICAL, 7, p);
        sample_logits(&logits, &mut r).unwrap()
    };
    let forward: Vec<Draw> = (0..200).map(draw).collect();
    let mut backward: Vec<Draw> = (0..200).rev().map(draw).collect();
    backward.reverse();
    assert_eq!(forward, backward);
}

/// Per-index noise: masking losing tokens (top-k, or any filter that keeps the winner)
/// leaves the race's draw unchanged.
#[test]
fn race_is_coupled_across_filters_that_keep_the_winner() {
    let logits = logits25();
    for pos in 0..2000 {
        let addr = || CounterRng::new(key(), Purpose::CATEGORICAL, 1, pos);
        let d = sample_logits(&logits, &mut addr()).unwrap();
        let mut filtered = logits.clone();
        for (i, l) in filtered.iter_mut().enumerate() {
            if i != d.token as usize && !(i + pos as usize).is_multiple_of(3) {
                *l = NEG;
            }
        }
        let e = sample_logits(&filtered, &mut addr()).unwrap();
        assert_eq!(e.token, d.token, "position {pos}");
        let masses = softmax(&logits);
        let fm = softmax(&filtered);
        let a = sample_masses_race(&masses, &mut addr()).unwrap().token;
        let mut fmasses = masses.clone();
        for (i, w) in fmasses.iter_mut().enumerate() {
            if fm[i] == 0.0 && i != a as usize {
                *w = 0.0;
            }
        }
        if fmasses[a as usize] > 0.0 {
            assert_eq!(sample_masses_race(&fmasses, &mut addr()).unwrap().token, a);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

fn rng0() -> CounterRng {
    CounterRng::new(key(), Purpose::CATEGORICAL, 0, 0)
}

#[test]
fn bad_logits_are_rejected() {
    let empty: [f32; 0] = [];
    let cases: [(&[f32], Option<usize>); 4] = [
        (&empty, None),
        (&[0.0, f32::NAN], Some(1)),
        (&[f32::INFINITY, 0.0], Some(0)),
        (&[NEG, NEG, NEG], None),
    ];
    for (logits, index) in cases {
        for r in [
            sample_logits(logits, &mut rng0()),
            sample_logits_inverse_cdf(logits, 0.5),
        ] {
            match (r, index) {
                (
                    Err(Error::NonFinite {
                        arg: "logits",
                        index: i,
                        ..
                    }),
                    Some(j),
                ) => assert_eq!(i, j),
                (Err(Error::InvalidArgument { arg: "logits", .. }), None) => {}
                (other, _) => panic!("{logits:?}: unexpected {other:?}"),
            }
        }
    }
    // f64 logits too.
    assert!(matches!(
        sample_logits(&[0.0, f64::NAN, 1.0], &mut rng0()),
        Err(Error::NonFinite {
            arg: "logits",
            index: 1,
            ..
        })
    ));
}

#[test]
fn bad_uniforms_are_rejected() {
    for u in [
        -0.1,
        1.0,
        1.5,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0 - 1e-300,
    ] {
        assert!(
            matches!(
                sample_logits_inverse_cdf(&[0.0_f32, 1.0], u),
                Err(Error::InvalidArgument { arg: "u", .. })
            ),
            "u = {u}"
        );
        assert!(matches!(
            sample_masses(&[1.0, 2.0], u),
            Err(Error::InvalidArgument { arg: "u", .. })
        ));
    }
    // The closed end is allowed, and -0.0 is 0.
    assert!(sample_masses(&[1.0, 2.0], -0.0).is_ok());
}

#[test]
fn bad_masses_are_rejected() {
    let cases: [&[f64]; 7] = [
        &[],
        &[0.0, 0.0],
        &[1.0, -0.5],
        &[1.0, f64::NAN],
        &[f64::INFINITY, 1.0],
        &[f64::MAX, f64::MAX], // total overflows
        &[-0.0, 0.0],
    ];
    for masses in cases {
        for r in [
            sample_masses(masses, 0.5),
            sample_masses_race(masses, &mut rng0()),
        ] {
            assert!(
                matches!(
                    r,
                    Err(Error::InvalidArgument { arg: "masses", .. }
                        | Error::NonFinite { arg: "masses", .. }
                        | Error::NotADistribution { arg: "masses", .. })
                ),
                "{masses:?}: {r:?}"
            );
        }
    }
    assert!(matches!(
        sample_masses(&[1.0, -0.5], 0.5),
        Err(Error::NotADistribution { .. })
    ));
    assert!(matches!(
        sample_masses_race(&[1.0, f64::NAN], &mut rng0()),
        Err(Error::NonFinite { index: 1, .. })
    ));
}
