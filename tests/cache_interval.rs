//! Interval refresh (dLLM-Cache / dKV-Cache semantics at the logit level): exact with
//! intervals of 1, a measured approximation otherwise; refresh accounting; bad inputs.

mod cache_common;

use cache_common::{assert_rejects_malformed_calls, process};
use discrete_diffusion::Error;
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::cache::{IntervalCache, IntervalConfig};
use discrete_diffusion::sample::driver::BlockModel;
use ndarray::{Array1, Array2, Array3};

const V: usize = 4;
const L: usize = 4;
const MASK: u32 = 0;
const PROMPT: u32 = 2;

type Oracle = OracleDenoiser<EnumerationOracle, MixtureProcess>;

/// A strongly correlated law: position 0 is the prompt (2 or 3); the response is mostly a
/// repeated token, so stale posteriors are visibly wrong.
fn law() -> Vec<f64> {
    let n = V.pow(L as u32);
    let mut p = vec![0.0; n];
    for (k, q) in p.iter_mut().enumerate() {
        let x: Vec<usize> = (0..L)
            .map(|i| (k / V.pow((L - 1 - i) as u32)) % V)
            .collect();
        if x.contains(&(MASK as usize)) {
            continue;
        }
        let same = x[1] == x[2] && x[2] == x[3];
        *q = if same {
            10.0 + x[1] as f64 + x[0] as f64
        } else {
            0.2
        };
    }
    let z: f64 = p.iter().sum();
    p.iter_mut().for_each(|q| *q /= z);
    p
}

fn oracle(masking: bool) -> Oracle {
    let process = process(V, MASK, masking);
    OracleDenoiser::new(EnumerationOracle::new(V, L, law()).unwrap(), process).unwrap()
}

fn softmax(row: ndarray::ArrayView1<'_, f32>) -> Vec<f64> {
    let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let w: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
    let z: f64 = w.iter().sum();
    w.into_iter().map(|v| v / z).collect()
}

struct Run {
    samples: Array2<u32>,
    /// Mean total variation between served and fresh x0 posteriors over masked positions.
    mean_tv: f64,
    max_tv: f64,
}

/// MDLM ancestral sampling (α(t) = 1 − t) from prompt `x_0 = PROMPT`, comparing each served logit tensor
/// with the fresh one.
fn mdlm(d: &dyn Denoiser, fresh: &dyn Denoiser, b: usize, steps: u32, seed: u64) -> Run {
    let mut x = Array2::<u32>::from_elem((b, L), MASK);
    x.column_mut(0).fill(PROMPT);
    let (mut tv_sum, mut tv_n, mut max_tv) = (0.0, 0usize, 0.0f64);
    for k in (1..=steps).rev() {
        // Times stop short of 1: a clean prompt token has probability 0 at t = 1.
        let (t, s) = (
            0.999 * k as f64 / steps as f64,
            0.999 * (k - 1) as f64 / steps as f64,
        );
        let times = Array1::from_elem(b, t);
        let mut logits = Array3::<f32>::zeros((b, L, V));
        d.logits(x.view(), times.view(), logits.view_mut()).unwrap();
        let mut truth = Array3::<f32>::zeros((b, L, V));
        fresh
            .logits(x.view(), times.view(), truth.view_mut())
            .unwrap();
        for r in 0..b {
            let key = RngKey::for_stream(seed, r as u64);
            for i in 1..L {
                if x[[r, i]] != MASK {
                    continue;
                }
                let p = softmax(logits.slice(ndarray::s![r, i, ..]));
                let q = softmax(truth.slice(ndarray::s![r, i, ..]));
                let tv = 0.5 * p.iter().zip(&q).map(|(a, c)| (a - c).abs()).sum::<f64>();
                tv_sum += tv;
                tv_n += 1;
                max_tv = max_tv.max(tv);
                if CounterRng::new(key, Purpose::ROUTING, k, i as u32).uniform() >= (t - s) / t {
                    continue;
                }
                let mut u = CounterRng::new(key, Purpose::CATEGORICAL, k, i as u32).uniform();
                let mut tok = V - 1;
                for (v, &pv) in p.iter().enumerate() {
                    if u < pv {
                        tok = v;
                        break;
                    }
                    u -= pv;
                }
                x[[r, i]] = tok as u32;
            }
        }
    }
    Run {
        samples: x,
        mean_tv: tv_sum / tv_n.max(1) as f64,
        max_tv,
    }
}

/// Total variation between the empirical law of the responses and the exact conditional
/// `p(x_{1:3} | x_0 = PROMPT)`.
fn sample_tv(samples: &Array2<u32>) -> f64 {
    let p = law();
    let base = PROMPT as usize * V.pow(3);
    let z: f64 = p[base..base + V.pow(3)].iter().sum();
    let mut counts = vec![0.0; V.pow(3)];
    for row in samples.rows() {
        let k = row.iter().skip(1).fold(0, |a, &t| a * V + t as usize);
        counts[k] += 1.0;
    }
    let n = samples.nrows() as f64;
    0.5 * (0..V.pow(3))
        .map(|k| (counts[k] / n - p[base + k] / z).abs())
        .sum::<f64>()
}

#[test]
fn interval_one_is_exact() {
    // A time-dependent model (uniform noise): every step refreshes, outputs are identical.
    let cache = IntervalCache::new(oracle(false), IntervalConfig::new(1, 1).unwrap(), 1);
    let plain = oracle(false);
    let tokens = Array2::from_shape_vec((2, L), vec![2u32, 1, 3, 3, 3, 0, 1, 2]).unwrap();
    for k in 0..10 {
        let t = Array1::from_elem(2, 0.05 + 0.09 * k as f64);
        let (mut a, mut b) = (
            Array3::<f32>::zeros((2, L, V)),
            Array3::<f32>::zeros((2, L, V)),
        );
        plain.logits(tokens.view(), t.view(), a.view_mut()).unwrap();
        cache.logits(tokens.view(), t.view(), b.view_mut()).unwrap();
        assert_eq!(a, b);
    }
    assert_eq!(cache.nfe(), 10);
    // And inside a sampler: zero served-vs-fresh error, the same samples as uncached.
    let steps = 24;
    let cache = IntervalCache::new(oracle(true), IntervalConfig::new(1, 1).unwrap(), 1);
    let run = mdlm(&cache, &oracle(true), 64, steps, 5);
    let plain_run = mdlm(&oracle(true), &oracle(true), 64, steps, 5);
    assert_eq!(run.max_tv, 0.0);
    assert_eq!(run.samples, plain_run.samples);
    assert_eq!(cache.nfe(), steps as u64);
}

#[test]
fn longer_intervals_save_calls_at_a_measured_cost() {
    let (b, steps) = (3000, 32u32);
    let exact = mdlm(&oracle(true), &oracle(true), b, steps, 11);
    let exact_tv = sample_tv(&exact.samples);
    let mut last_mean = 0.0;
    for k in [2usize, 4, 8] {
        let mut cache = IntervalCache::new(oracle(true), IntervalConfig::new(k, k).unwrap(), 0);
        let prompt = Array2::from_elem((b, 1), PROMPT);
        cache.prefill(prompt.view()).unwrap();
        assert_eq!(cache.prompt_len(), 1);
        let run = mdlm(&cache, &oracle(true), b, steps, 11);
        let nfe = (steps as u64).div_ceil(k as u64);
        assert_eq!(cache.nfe(), nfe);
        assert_eq!(cache.positions_refreshed(), nfe * (b * L) as u64);
        let tv = sample_tv(&run.samples);
        eprintln!(
            "k_p = k_r = {k}: NFE {nfe}/{steps}; served-vs-fresh x0 TV mean {:.4}, max {:.4}; \
             sample TV to p(x | prompt) {tv:.4} (uncached {exact_tv:.4})",
            run.mean_tv, run.max_tv
        );
        assert!(
            run.mean_tv > 0.0 && run.max_tv > 0.1,
            "k = {k}: the reuse should be visible"
        );
        assert!(run.mean_tv > last_mean, "error grows with the interval");
        last_mean = run.mean_tv;
        if k == 8 {
            // Stale posteriors break the correlation between response tokens.
            assert!(
                tv > exact_tv + 0.05,
                "k = 8: sample TV {tv} vs uncached {exact_tv}"
            );
        }
    }
}

#[test]
fn separate_prompt_and_response_intervals() {
    let (kp, kr) = (3usize, 2usize);
    let cache = IntervalCache::new(oracle(true), IntervalConfig::new(kp, kr).unwrap(), 1);
    assert_eq!(IntervalConfig::new(kp, kr).unwrap().intervals(), (3, 2));
    let plain = oracle(true);
    let t = Array1::from_elem(1, 0.5);
    let seqs: Vec<[u32; L]> = vec![
        [2, 0, 0, 0],
        [3, 0, 0, 0],
        [2, 1, 0, 0],
        [3, 1, 1, 0],
        [2, 1, 1, 0],
        [3, 2, 0, 0],
        [2, 3, 3, 3],
    ];
    let mut fresh_at = vec![Array3::<f32>::zeros((1, L, V)); seqs.len()];
    let (mut last_p, mut last_r) = (0, 0);
    let mut expected_refreshed = 0;
    for (s, x) in seqs.iter().enumerate() {
        let tokens = Array2::from_shape_vec((1, L), x.to_vec()).unwrap();
        plain
            .logits(tokens.view(), t.view(), fresh_at[s].view_mut())
            .unwrap();
        let mut out = Array3::<f32>::zeros((1, L, V));
        cache
            .logits(tokens.view(), t.view(), out.view_mut())
            .unwrap();
        if s % kp == 0 {
            last_p = s;
            expected_refreshed += 1;
        }
        if s % kr == 0 {
            last_r = s;
            expected_refreshed += L - 1;
        }
        assert_eq!(
            out.slice(ndarray::s![.., ..1, ..]),
            fresh_at[last_p].slice(ndarray::s![.., ..1, ..]),
            "step {s}"
        );
        assert_eq!(
            out.slice(ndarray::s![.., 1.., ..]),
            fresh_at[last_r].slice(ndarray::s![.., 1.., ..]),
            "step {s}"
        );
    }
    // Steps 0, 2, 3, 4, 6 refresh something.
    assert_eq!(cache.nfe(), 5);
    assert_eq!(cache.positions_refreshed(), expected_refreshed as u64);
    assert_eq!(cache.stats().calls, seqs.len() as u64);
    // reset: the next call refreshes everything.
    cache.reset();
    let tokens = Array2::from_shape_vec((1, L), vec![3u32, 3, 0, 0]).unwrap();
    let (mut a, mut b) = (
        Array3::<f32>::zeros((1, L, V)),
        Array3::<f32>::zeros((1, L, V)),
    );
    cache.logits(tokens.view(), t.view(), a.view_mut()).unwrap();
    plain.logits(tokens.view(), t.view(), b.view_mut()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_inputs() {
    assert!(IntervalConfig::new(0, 1).is_err());
    assert!(IntervalConfig::new(1, 0).is_err());
    let cache = IntervalCache::new(oracle(true), IntervalConfig::new(2, 2).unwrap(), L + 1);
    let tokens = Array2::from_shape_vec((1, L), vec![2u32, 0, 0, 0]).unwrap();
    let t = Array1::from_elem(1, 0.5);
    let mut out = Array3::<f32>::zeros((1, L, V));
    assert!(matches!(
        cache.logits(tokens.view(), t.view(), out.view_mut()),
        Err(Error::InvalidArgument { .. })
    ));
    let cache = IntervalCache::new(oracle(true), IntervalConfig::new(2, 2).unwrap(), 1);
    assert_rejects_malformed_calls(&cache, &tokens);
    // The inner model's error (an impossible x_t: a masked state at t = 0) propagates, and
    // the step count does not advance.
    assert!(
        cache
            .logits(
                tokens.view(),
                Array1::from_elem(1, 0.0).view(),
                out.view_mut()
            )
            .is_err()
    );
    assert_eq!((cache.nfe(), cache.stats().calls), (0, 0));
    cache
        .logits(tokens.view(), t.view(), out.view_mut())
        .unwrap();
    assert_eq!(cache.nfe(), 1);
}
