//! Exact reuse: with a time-independent denoiser (the exact posterior of an absorbing
//! process) an MDLM-style sampler makes fewer real calls than steps, and every logit it sees
//! and every sample it draws is bit-identical to the uncached run. Bad inputs.

mod cache_common;

use std::sync::atomic::{AtomicU64, Ordering};

use cache_common::{assert_rejects_malformed_calls, process};
use discrete_diffusion::Error;
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
use discrete_diffusion::sample::cache::{ExactReuse, TimeDependence};
use discrete_diffusion::sample::driver::BlockModel;
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3};

const V: usize = 4;
const L: usize = 4;
const MASK: u32 = 0;

type Oracle = OracleDenoiser<EnumerationOracle, MixtureProcess>;

fn oracle(pi_mask: bool) -> Oracle {
    let n = V.pow(L as u32);
    let mut p = vec![0.0; n];
    for (k, q) in p.iter_mut().enumerate() {
        let (mut idx, mut ok, mut w) = (k, true, 1.0);
        for i in 0..L {
            let t = idx % V;
            idx /= V;
            ok &= !pi_mask || t != MASK as usize;
            w *= 1.0 + ((t * 7 + i * 3 + k) % 5) as f64;
        }
        *q = if ok { w } else { 0.0 };
    }
    let z: f64 = p.iter().sum();
    p.iter_mut().for_each(|q| *q /= z);
    let process = process(V, MASK, pi_mask);
    OracleDenoiser::new(EnumerationOracle::new(V, L, p).unwrap(), process).unwrap()
}

/// Counts the calls of the model it wraps.
struct Counting<D> {
    inner: D,
    calls: AtomicU64,
}

impl<D: Denoiser> Denoiser for Counting<D> {
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        out: ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.logits(tokens, times, out)
    }
}

impl<D: Denoiser> BlockModel for Counting<D> {}

/// MDLM ancestral sampling with α(t) = 1 − t: at step k (t = k/T → s = (k−1)/T) each masked
/// position is revealed with probability (t − s)/t, drawing from softmax(logits). Returns
/// the samples and every logits tensor the sampler saw.
fn mdlm(d: &dyn Denoiser, b: usize, steps: u32, seed: u64) -> (Array2<u32>, Vec<Array3<f32>>) {
    let mut x = Array2::<u32>::from_elem((b, L), MASK);
    let mut seen = Vec::new();
    for k in (1..=steps).rev() {
        let (t, s) = (k as f64 / steps as f64, (k - 1) as f64 / steps as f64);
        let mut logits = Array3::<f32>::zeros((b, L, V));
        d.logits(x.view(), Array1::from_elem(b, t).view(), logits.view_mut())
            .unwrap();
        for r in 0..b {
            let key = RngKey::for_stream(seed, r as u64);
            for i in 0..L {
                if x[[r, i]] != MASK {
                    continue;
                }
                let u = CounterRng::new(key, Purpose::ROUTING, k, i as u32).uniform();
                if u >= (t - s) / t {
                    continue;
                }
                let row = logits.slice(ndarray::s![r, i, ..]);
                let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                let w: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
                let z: f64 = w.iter().sum();
                let mut target =
                    CounterRng::new(key, Purpose::CATEGORICAL, k, i as u32).uniform() * z;
                let mut tok = V - 1;
                for (v, &wv) in w.iter().enumerate() {
                    if target < wv {
                        tok = v;
                        break;
                    }
                    target -= wv;
                }
                x[[r, i]] = tok as u32;
            }
        }
        seen.push(logits);
    }
    (x, seen)
}

#[test]
fn time_independent_reuse_is_exact_and_saves_calls() {
    let steps = 64;
    let plain = Counting {
        inner: oracle(true),
        calls: AtomicU64::new(0),
    };
    let (x_plain, seen_plain) = mdlm(&plain, 6, steps, 42);
    assert_eq!(plain.calls.load(Ordering::Relaxed), steps as u64);

    let mut cached = ExactReuse::new(
        Counting {
            inner: oracle(true),
            calls: AtomicU64::new(0),
        },
        TimeDependence::Independent,
    );
    cached.prefill(x_plain.view()).unwrap();
    let (x_cached, seen_cached) = mdlm(&cached, 6, steps, 42);
    assert_eq!(x_cached, x_plain);
    for (a, b) in seen_cached.iter().zip(&seen_plain) {
        let bits = |m: &Array3<f32>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b));
    }
    let stats = cached.stats();
    assert_eq!(stats.calls, steps as u64);
    assert_eq!(stats.nfe, cached.inner().calls.load(Ordering::Relaxed));
    assert!(
        stats.nfe < steps as u64 / 2,
        "NFE {} for {steps} steps",
        stats.nfe
    );
    assert!(stats.rows_evaluated < 6 * steps as u64);
    eprintln!(
        "exact reuse: {steps} steps, batch 6: NFE {}, rows evaluated {} (uncached: {steps}, {})",
        stats.nfe,
        stats.rows_evaluated,
        6 * steps
    );
}

#[test]
fn time_dependent_reuse_only_when_time_repeats() {
    // Under uniform noise the posterior depends on t: declare it, and every new time is a
    // real call — still bit-identical.
    let steps = 16;
    let plain = oracle(false);
    let cached = ExactReuse::new(oracle(false), TimeDependence::Dependent);
    let tokens = Array2::from_shape_vec((2, L), vec![1u32, 2, 3, 0, 0, 0, 1, 1]).unwrap();
    for k in 0..steps {
        let t = Array1::from_elem(2, 0.1 + 0.05 * k as f64);
        let (mut a, mut b) = (
            Array3::<f32>::zeros((2, L, V)),
            Array3::<f32>::zeros((2, L, V)),
        );
        plain.logits(tokens.view(), t.view(), a.view_mut()).unwrap();
        cached
            .logits(tokens.view(), t.view(), b.view_mut())
            .unwrap();
        assert_eq!(a, b);
        // Same time again: served from the cache.
        cached
            .logits(tokens.view(), t.view(), b.view_mut())
            .unwrap();
        assert_eq!(a, b);
    }
    assert_eq!(cached.nfe(), steps);
    assert_eq!(cached.stats().calls, 2 * steps);
}

#[test]
fn only_changed_rows_are_evaluated() {
    let cached = ExactReuse::new(oracle(true), TimeDependence::Independent);
    let plain = oracle(true);
    let mut tokens =
        Array2::from_shape_vec((3, L), vec![0u32, 0, 0, 0, 1, 0, 2, 0, 0, 3, 3, 0]).unwrap();
    let t = Array1::from_elem(3, 0.5);
    let mut out = Array3::<f32>::zeros((3, L, V));
    cached
        .logits(tokens.view(), t.view(), out.view_mut())
        .unwrap();
    tokens[[1, 1]] = 2;
    cached
        .logits(tokens.view(), t.view(), out.view_mut())
        .unwrap();
    let s = cached.stats();
    assert_eq!((s.nfe, s.rows_evaluated), (2, 4));
    let mut want = Array3::<f32>::zeros((3, L, V));
    plain
        .logits(tokens.view(), t.view(), want.view_mut())
        .unwrap();
    assert_eq!(out, want);
    // A batch of another shape rebuilds the cache.
    let small = tokens.slice(ndarray::s![..2, ..]).to_owned();
    let mut o2 = Array3::<f32>::zeros((2, L, V));
    cached
        .logits(
            small.view(),
            Array1::from_elem(2, 0.5).view(),
            o2.view_mut(),
        )
        .unwrap();
    assert_eq!(cached.stats().rows_evaluated, 6);
    // reset / prefill forget everything.
    cached.reset();
    cached
        .logits(
            small.view(),
            Array1::from_elem(2, 0.5).view(),
            o2.view_mut(),
        )
        .unwrap();
    assert_eq!(cached.nfe(), 4);
}

/// Fails on a chosen call.
struct FailOn {
    inner: Oracle,
    calls: AtomicU64,
    fail_at: u64,
}

impl Denoiser for FailOn {
    fn vocab_size(&self) -> usize {
        V
    }
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        out: ArrayViewMut3<'_, f32>,
    ) -> discrete_diffusion::Result<()> {
        if self.calls.fetch_add(1, Ordering::Relaxed) == self.fail_at {
            return Err(Error::invalid("model", "injected failure"));
        }
        self.inner.logits(tokens, times, out)
    }
}

#[test]
fn bad_inputs_leave_the_cache_intact() {
    let cached = ExactReuse::new(
        FailOn {
            inner: oracle(true),
            calls: AtomicU64::new(0),
            fail_at: 1,
        },
        TimeDependence::Independent,
    );
    let tokens = Array2::from_shape_vec((1, L), vec![0u32, 1, 0, 2]).unwrap();
    let t = Array1::from_elem(1, 0.5);
    let mut good = Array3::<f32>::zeros((1, L, V));
    cached
        .logits(tokens.view(), t.view(), good.view_mut())
        .unwrap();
    // Shapes, tokens, times.
    assert_rejects_malformed_calls(&cached, &tokens);
    let mut out = Array3::<f32>::zeros((1, L, V));
    // The model's own failure propagates and is not counted as an evaluation.
    let changed = Array2::from_shape_vec((1, L), vec![3u32, 1, 0, 2]).unwrap();
    assert!(
        cached
            .logits(changed.view(), t.view(), out.view_mut())
            .is_err()
    );
    assert_eq!(cached.nfe(), 1);
    // The cache still serves the first result.
    cached
        .logits(tokens.view(), t.view(), out.view_mut())
        .unwrap();
    assert_eq!(out, good);
    assert_eq!(cached.nfe(), 1);
}
