//! Campbell's continuous-time ELBO as an exact integral: with the exact reverse rates and
//! the exact prior it equals −log p(x0) (absorbing and uniform generators, a two-token
//! space, tanh–sinh quadrature, within 1e-11); any other model or prior gives a larger value on
//! average over the data.

use std::collections::HashMap;

use discrete_diffusion::Result;
use discrete_diffusion::kernel::ctmc::{MixtureGenerator, RateGenerator};
use discrete_diffusion::loss::ctmc::ct_elbo_exact::{
    ct_elbo_integrand, ct_elbo_prior_term, ct_nelbo_exact,
};
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::param::reverse::CtmcChannel;

/// The exact single-token ratios `p_s(x^{i←y})/p_s(x)` of an enumerated data law, with the
/// marginal `p_s` cached per `s`; `scale` perturbs them (1 = exact).
struct Exact<'a, G> {
    g: &'a G,
    data: &'a EnumerationOracle,
    cache: HashMap<u64, Vec<f64>>,
    scale: f64,
}

impl<G: RateGenerator> Exact<'_, G> {
    fn marginal(&mut self, s: f64) -> Result<&Vec<f64>> {
        if !self.cache.contains_key(&s.to_bits()) {
            let ch = CtmcChannel::new(self.g, s)?;
            let m = self.data.marginal_xt(&ch)?;
            self.cache.insert(s.to_bits(), m);
        }
        Ok(&self.cache[&s.to_bits()])
    }

    fn ratio(&mut self, s: f64, x: &[u32], i: usize, out: &mut [f64]) -> Result<()> {
        let (data, scale) = (self.data, self.scale);
        let ps = self.marginal(s)?;
        let at = ps[data.index(x)?];
        let mut y_seq = x.to_vec();
        for (y, o) in out.iter_mut().enumerate() {
            y_seq[i] = y as u32;
            let r = ps[data.index(&y_seq)?] / at;
            *o = if at > 0.0 {
                r * if y % 2 == 0 { scale } else { 1.0 }
            } else {
                f64::NAN // unreachable states: never read
            };
        }
        Ok(())
    }
}

fn model<'a, G: RateGenerator>(g: &'a G, data: &'a EnumerationOracle, scale: f64) -> Exact<'a, G> {
    Exact {
        g,
        data,
        cache: HashMap::new(),
        scale,
    }
}

/// Absorbing generator, mask at index 1 (not the last), two tokens over {0, 2, 3}; the
/// process reaches the all-mask prior at σ̄ = ∞.
#[test]
fn absorbing_ct_elbo_is_tight_with_exact_rates() {
    let (v, mask) = (4usize, 1u32);
    let g = MixtureGenerator::absorbing(v, mask).unwrap();
    let pairs = [
        (vec![0, 2], 0.3),
        (vec![2, 0], 0.1),
        (vec![3, 3], 0.25),
        (vec![0, 3], 0.2),
        (vec![2, 2], 0.15),
    ];
    let data = EnumerationOracle::from_pairs(v, 2, &pairs).unwrap();
    let log_prior = |x: &[u32]| {
        Ok(if x.iter().all(|&t| t == mask) {
            0.0
        } else {
            f64::NEG_INFINITY
        })
    };
    for (x0, p) in &pairs {
        let mut m = model(&g, &data, 1.0);
        let mut f = |s: f64, x: &[u32], i: usize, o: &mut [f64]| m.ratio(s, x, i, o);
        let nelbo = ct_nelbo_exact(&g, f64::INFINITY, x0, &mut f, log_prior, 1.0 / 32.0).unwrap();
        assert!(
            (nelbo + p.ln()).abs() < 1e-11,
            "x0 {x0:?}: {nelbo} vs {}",
            -p.ln()
        );
    }
    // A wrong model bounds −log p_θ(x0) of its own law p_θ, which may exceed p(x0) at one
    // x0; on average over the data the bound is strictly above the entropy H(p)
    // (Σ p (−log p_θ) ≥ H(p), Gibbs).
    let (mut avg, mut entropy) = (0.0, 0.0);
    for (x0, p) in &pairs {
        let mut m = model(&g, &data, 1.3);
        let mut f = |s: f64, x: &[u32], i: usize, o: &mut [f64]| m.ratio(s, x, i, o);
        avg += p * ct_nelbo_exact(&g, f64::INFINITY, x0, &mut f, log_prior, 1.0 / 32.0).unwrap();
        entropy -= p * p.ln();
    }
    assert!(avg > entropy + 1e-4, "{avg} vs H = {entropy}");
}

/// Uniform generator over 3 states, two tokens, a data law with zeros: tight at σ̄ = ∞
/// with the uniform prior, and at σ̄(1) = 2.5 with the exact noisy marginal as prior (the
/// uniform prior is then strictly looser).
#[test]
fn uniform_ct_elbo_is_tight_with_exact_rates_and_prior() {
    let v = 3usize;
    let g = MixtureGenerator::uniform(v).unwrap();
    let probs = vec![0.2, 0.0, 0.1, 0.05, 0.3, 0.0, 0.15, 0.1, 0.1];
    let data = EnumerationOracle::new(v, 2, probs.clone()).unwrap();
    let uniform = |_: &[u32]| Ok((1.0f64 / 9.0).ln());
    let s_max = 2.5;
    let p_s = data
        .marginal_xt(&CtmcChannel::new(&g, s_max).unwrap())
        .unwrap();
    let exact_prior = |x: &[u32]| Ok(p_s[data.index(x)?].ln());
    for idx in [0usize, 2, 4, 8] {
        let x0 = data.sequence(idx).unwrap();
        let want = -probs[idx].ln();
        for h in [1.0 / 16.0, 1.0 / 32.0] {
            let mut m = model(&g, &data, 1.0);
            let mut f = |s: f64, x: &[u32], i: usize, o: &mut [f64]| m.ratio(s, x, i, o);
            let inf = ct_nelbo_exact(&g, f64::INFINITY, &x0, &mut f, uniform, h).unwrap();
            assert!(
                (inf - want).abs() < 1e-11,
                "x0 {x0:?} h {h}: {inf} vs {want}"
            );
            let fin = ct_nelbo_exact(&g, s_max, &x0, &mut f, exact_prior, h).unwrap();
            assert!(
                (fin - want).abs() < 1e-11,
                "x0 {x0:?} S {s_max}: {fin} vs {want}"
            );
        }
    }
    // The uniform prior at S = 2.5 (not p_S): strictly looser on average over the data.
    let (mut avg, mut entropy) = (0.0, 0.0);
    for (idx, &p) in probs.iter().enumerate().filter(|(_, p)| **p > 0.0) {
        let x0 = data.sequence(idx).unwrap();
        let mut m = model(&g, &data, 1.0);
        let mut f = |s: f64, x: &[u32], i: usize, o: &mut [f64]| m.ratio(s, x, i, o);
        avg += p * ct_nelbo_exact(&g, s_max, &x0, &mut f, uniform, 1.0 / 32.0).unwrap();
        entropy -= p * p.ln();
    }
    assert!(avg > entropy + 1e-4, "{avg} vs H = {entropy}");
}

/// The integrand is schedule-free and matches a direct evaluation for one token:
/// f(s) for absorbing noise is `−α ln p(x0) − α ln(α/(1 − α))` (derived in closed form).
#[test]
fn one_token_absorbing_integrand_has_its_closed_form() {
    let g = MixtureGenerator::absorbing(3, 2).unwrap();
    let data = EnumerationOracle::new(3, 1, vec![0.6, 0.4, 0.0]).unwrap();
    for &s in &[1e-6, 0.3, 2.0, 30.0] {
        let mut m = model(&g, &data, 1.0);
        let mut f = |s: f64, x: &[u32], i: usize, o: &mut [f64]| m.ratio(s, x, i, o);
        let got = ct_elbo_integrand(&g, s, &[0], &mut f).unwrap();
        let a = (-s).exp();
        let want = -a * 0.6f64.ln() - a * (a / -(-s).exp_m1()).ln();
        assert!(
            (got - want).abs() < 1e-12 * want.abs().max(1.0),
            "s {s}: {got} vs {want}"
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    let g = MixtureGenerator::uniform(3).unwrap();
    let mut ones = |_: f64, _: &[u32], _: usize, o: &mut [f64]| {
        o.fill(1.0);
        Ok(())
    };
    assert!(ct_elbo_integrand(&g, 0.0, &[0], &mut ones).is_err());
    assert!(ct_elbo_integrand(&g, f64::INFINITY, &[0], &mut ones).is_err());
    assert!(ct_elbo_integrand(&g, 1.0, &[], &mut ones).is_err());
    assert!(ct_elbo_integrand(&g, 1.0, &[3], &mut ones).is_err());
    assert!(ct_elbo_integrand(&g, 1.0, &[0; 40], &mut ones).is_err());
    let mut neg = |_: f64, _: &[u32], _: usize, o: &mut [f64]| {
        o.fill(-1.0);
        Ok(())
    };
    assert!(ct_elbo_integrand(&g, 1.0, &[0], &mut neg).is_err());
    let zero = |_: &[u32]| Ok(0.0);
    assert!(ct_nelbo_exact(&g, 1.0, &[0], &mut ones, zero, 0.0).is_err());
    assert!(ct_nelbo_exact(&g, 1.0, &[0], &mut ones, zero, f64::NAN).is_err());
    assert!(ct_elbo_prior_term(&g, 0.0, &[0], zero).is_err());
    assert!(ct_elbo_prior_term(&g, 1.0, &[0], |_: &[u32]| Ok(f64::NAN)).is_err());
    // A zero ratio on a possible forward jump: the bound is +∞.
    let mut zeros = |_: f64, _: &[u32], _: usize, o: &mut [f64]| {
        o.fill(0.0);
        Ok(())
    };
    assert_eq!(
        ct_elbo_integrand(&g, 1.0, &[0], &mut zeros).unwrap(),
        f64::INFINITY
    );
}
