//! Shared helpers for the criterion benches: the short measurement settings and
//! deterministic random inputs drawn from the crate's own Philox generator.
//!
//! Each bench binary uses only part of this module.
#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};

/// Short settings so that `cargo bench` of every bench runs in a few minutes on 2 cores:
/// 0.5 s warm-up, 1.5 s measurement, 20 samples per benchmark, and no plots (rendering
/// them with the plotters backend took about 8 s per benchmark on the 2-core machine,
/// four times the measurement). Command-line options override these (`criterion_group!`
/// applies them after this configuration), e.g.
/// `cargo bench --bench posterior -- --measurement-time 5 --sample-size 50`.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
        .without_plots()
}

/// A deterministic stream of random inputs (Philox, fixed seed).
pub struct Inputs(CounterRng);

impl Inputs {
    /// The input stream `stream` of the benches' fixed seed.
    pub fn new(stream: u64) -> Self {
        Inputs(CounterRng::new(
            RngKey::for_stream(0xBE_4C_11, stream),
            Purpose::USER,
            0,
            0,
        ))
    }

    /// The underlying generator.
    pub fn rng(&mut self) -> &mut CounterRng {
        &mut self.0
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        self.0.uniform()
    }

    /// Standard normal (Box–Muller on two 53-bit uniforms).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.0.uniform_open();
        let u2 = self.0.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `V` logits `scale · N(0, 1)` in `f32`.
    pub fn logits_f32(&mut self, v: usize, scale: f64) -> Vec<f32> {
        (0..v).map(|_| (scale * self.normal()) as f32).collect()
    }

    /// A random distribution over `V` states: `softmax(scale · N(0, 1))` in `f64`, every
    /// entry positive, normalised exactly to the last rounding.
    pub fn distribution(&mut self, v: usize, scale: f64) -> Vec<f64> {
        let w: Vec<f64> = (0..v).map(|_| (scale * self.normal()).exp()).collect();
        let z: f64 = w.iter().sum();
        w.into_iter().map(|x| x / z).collect()
    }
}

/// `β_1..β_T` linearly spaced from `lo` to `hi`.
pub fn linear_betas(t: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..t)
        .map(|i| lo + (hi - lo) * i as f64 / (t.max(2) - 1) as f64)
        .collect()
}
