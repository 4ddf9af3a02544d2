//! Invariants of the `schedule` layer (proptest) and a bad-input test for every public
//! entry point.

use discrete_diffusion::Error;
use discrete_diffusion::rng::RngKey;
use discrete_diffusion::schedule::{
    Antithetic, BetaSchedule, D3pmTextKind, ExponentialFamily, FlowPolynomial, Geometric, Kappa,
    Linear, LinearTotalNoise, LogLinear, LogLinearImportance, LogitNormal, Md4Cosine, Md4GridKind,
    MdlmCosine, MdlmCosineSqr, MutualInformationSchedule, Polynomial, Schedule, Stratified,
    TimeGrid, TimeSampler, Uniform, VariancePreserving, discretize_time, flow_matching_time_grid,
    pchip_interpolate, relative_information_removal,
};
use proptest::prelude::*;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Every schedule type, with parameters drawn from their valid domains.
fn any_schedule() -> impl Strategy<Value = Box<dyn Schedule>> {
    prop_oneof![
        (1e-5f64..0.5).prop_map(|e| Box::new(LogLinear::new(e).unwrap()) as Box<dyn Schedule>),
        (0.0f64..0.5).prop_map(|e| Box::new(MdlmCosine::new(e).unwrap()) as Box<dyn Schedule>),
        (0.0f64..0.5).prop_map(|e| Box::new(MdlmCosineSqr::new(e).unwrap()) as Box<dyn Schedule>),
        (0.0f64..0.4).prop_map(|e| Box::new(Linear::md4(e).unwrap()) as Box<dyn Schedule>),
        (0.3f64..5.0, 0.0f64..0.4)
            .prop_map(|(n, e)| Box::new(Polynomial::md4(n, e).unwrap()) as Box<dyn Schedule>),
        (0.0f64..0.4).prop_map(|e| Box::new(Md4Cosine::md4(e).unwrap()) as Box<dyn Schedule>),
        (0.3f64..5.0).prop_map(|n| Box::new(FlowPolynomial::new(n).unwrap()) as Box<dyn Schedule>),
        (1e-5f64..0.5, 1.0f64..30.0)
            .prop_map(|(a, b)| Box::new(Geometric::new(a, b).unwrap()) as Box<dyn Schedule>),
        (0.0f64..0.5, 1.0f64..30.0).prop_map(|(a, b)| {
            Box::new(LinearTotalNoise::new(a, b).unwrap()) as Box<dyn Schedule>
        }),
        (0.0f64..1.0, 1.0f64..30.0).prop_map(|(a, b)| {
            Box::new(VariancePreserving::new(a, b).unwrap()) as Box<dyn Schedule>
        }),
    ]
}

/// A schedule that only provides α and α', so the trait's defaults (bisection,
/// σ̄ = −ln α, …) are exercised.
#[derive(Debug)]
struct DefaultsOnly<S>(S);

impl<S: Schedule> Schedule for DefaultsOnly<S> {
    fn name(&self) -> &'static str {
        "defaults_only"
    }
    fn alpha(&self, t: f64) -> discrete_diffusion::Result<f64> {
        self.0.alpha(t)
    }
    fn alpha_derivative(&self, t: f64) -> discrete_diffusion::Result<f64> {
        self.0.alpha_derivative(t)
    }
}

fn is_invalid<T: std::fmt::Debug>(r: discrete_diffusion::Result<T>) -> bool {
    matches!(
        r,
        Err(Error::InvalidArgument { .. })
            | Err(Error::NonFinite { .. })
            | Err(Error::Shape { .. })
            | Err(Error::NotADistribution { .. })
            | Err(Error::TokenOutOfRange { .. })
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn alpha_in_unit_interval_and_monotone(s in any_schedule(), a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
        let (t1, t2) = if a <= b { (a, b) } else { (b, a) };
        let (a1, a2) = (s.alpha(t1).unwrap(), s.alpha(t2).unwrap());
        prop_assert!((0.0..=1.0).contains(&a1) && (0.0..=1.0).contains(&a2));
        prop_assert!(a1 >= a2 - 1e-15, "{}: α({t1}) = {a1} < α({t2}) = {a2}", s.name());
        prop_assert!(s.alpha_derivative(t1).unwrap() <= 0.0);
    }

    #[test]
    fn derivative_matches_central_differences(s in any_schedule(), t in 0.02f64..0.98) {
        let h = 1e-6;
        let fd = (s.alpha(t + h).unwrap() - s.alpha(t - h).unwrap()) / (2.0 * h);
        let d = s.alpha_derivative(t).unwrap();
        prop_assert!((fd - d).abs() <= 1e-5 * (1.0 + d.abs()), "{}: α'({t}) = {d}, FD {fd}", s.name());
    }

    #[test]
    fn derived_quantities_are_consistent(s in any_schedule(), t in 0.001f64..0.999) {
        let a = s.alpha(t).unwrap();
        let da = s.alpha_derivative(t).unwrap();
        let sb = s.total_noise(t).unwrap();
        prop_assert!(((-sb).exp() - a).abs() <= 1e-12 * (1.0 + a));
        let rate = s.noise_rate(t).unwrap();
        prop_assert!((rate - (-da / a)).abs() <= 1e-9 * (1.0 + rate.abs()));
        let m = s.move_chance(t).unwrap();
        prop_assert!((m - (1.0 - a)).abs() <= 1e-13);
        let w = s.elbo_weight(t).unwrap();
        prop_assert!(w >= 0.0);
        prop_assert!((w - (-da / (1.0 - a))).abs() <= 1e-7 * (1.0 + w.abs()), "{}: w = {w}", s.name());
        let l = s.log_snr(t).unwrap();
        prop_assert!((l - (a / (1.0 - a)).ln()).abs() <= 1e-7 * (1.0 + l.abs()));
    }

    #[test]
    fn time_of_alpha_round_trips(s in any_schedule(), t in 0.0f64..=1.0) {
        let a = s.alpha(t).unwrap();
        let back = s.time_of_alpha(a).unwrap();
        prop_assert!((0.0..=1.0).contains(&back));
        // Compare in α (t is ill-conditioned where α is flat).
        let a_back = s.alpha(back).unwrap();
        prop_assert!((a_back - a).abs() <= 1e-9, "{}: t {t} -> α {a} -> t {back} -> α {a_back}", s.name());
        // The default bisection agrees with the closed forms.
        let bis = DefaultsOnly(&*s).time_of_alpha(a).unwrap();
        prop_assert!((s.alpha(bis).unwrap() - a).abs() <= 1e-9);
    }

    #[test]
    fn kappa_adaptor_is_alpha_reflected(s in any_schedule(), x in 0.0f64..=1.0) {
        let k = Kappa::convex(&*s);
        prop_assert_eq!(k.kappa(x).unwrap(), s.alpha(1.0 - x).unwrap());
        prop_assert!(k.kappa_derivative(x).unwrap() >= 0.0);
        prop_assert!((k.sigma(x).unwrap() + k.kappa(x).unwrap() - 1.0).abs() < 1e-15);
        let kv = Kappa::variance_preserving(&*s);
        let (kk, sg) = (kv.kappa(x).unwrap(), kv.sigma(x).unwrap());
        prop_assert!((kk * kk + sg * sg - 1.0).abs() < 1e-12);
        let back = k.kappa_inverse(kk).unwrap();
        prop_assert!((k.kappa(back).unwrap() - kk).abs() < 1e-9);
    }

    #[test]
    fn betas_valid_and_alpha_bar_consistent(betas in prop::collection::vec(0.0f64..=1.0, 1..40)) {
        let b = BetaSchedule::from_betas(betas.clone()).unwrap();
        prop_assert_eq!(b.num_steps(), betas.len());
        let mut prod = 1.0f64;
        prop_assert_eq!(b.alpha_bar(0).unwrap(), 1.0);
        for (k, &beta) in betas.iter().enumerate() {
            prop_assert_eq!(b.beta(k + 1).unwrap(), beta);
            prod *= 1.0 - beta;
            let ab = b.alpha_bar(k + 1).unwrap();
            prop_assert!((ab - prod).abs() <= 1e-12 * (1.0 + prod), "{ab} vs {prod}");
            prop_assert!(ab <= b.alpha_bar(k).unwrap());
        }
    }

    #[test]
    fn standard_beta_constructors_are_valid(t in 1usize..300, a in 0.0f64..=1.0, c in 0.0f64..=1.0, scale in 1.0f64..4.0) {
        let (lo, hi) = if a <= c { (a, c) } else { (c, a) };
        for b in [
            BetaSchedule::linear(t, lo, hi).unwrap(),
            BetaSchedule::cosine(t).unwrap(),
            BetaSchedule::mutual_information(t).unwrap(),
            BetaSchedule::text_standard(t, scale).unwrap(),
            BetaSchedule::text_linear(t, lo, hi).unwrap(),
        ] {
            prop_assert_eq!(b.num_steps(), t);
            prop_assert!(b.betas().iter().all(|x| (0.0..=1.0).contains(x)));
        }
        // ᾱ_t = 1 − t/T for the mutual-information schedule.
        let mi = BetaSchedule::mutual_information(t).unwrap();
        for k in 0..=t {
            prop_assert!((mi.alpha_bar(k).unwrap() - (1.0 - k as f64 / t as f64)).abs() < 1e-12);
        }
    }

    #[test]
    fn from_continuous_matches_alpha(s in any_schedule(), n in 1usize..50) {
        let grid: Vec<f64> = (0..=n).map(|k| k as f64 / n as f64).collect();
        let b = BetaSchedule::from_continuous(&*s, &grid).unwrap();
        let a0 = s.alpha(0.0).unwrap();
        for (k, &t) in grid.iter().enumerate() {
            let want = s.alpha(t).unwrap() / a0;
            prop_assert!((b.alpha_bar(k).unwrap() - want).abs() <= 1e-10);
        }
    }

    #[test]
    fn grids_descend_inside_unit_interval(s in any_schedule(), n in 1usize..200, p in 0.2f64..4.0, tmin in 0.0f64..0.5) {
        let mut grids = vec![
            TimeGrid::uniform(n, tmin).unwrap(),
            TimeGrid::power(n, p, tmin).unwrap(),
            TimeGrid::md4(n, Md4GridKind::Linear).unwrap(),
            TimeGrid::md4(n, Md4GridKind::Cosine).unwrap(),
        ];
        if let Ok(g) = TimeGrid::alpha_uniform(&*s, n.min(50), tmin) {
            grids.push(g);
        }
        for g in grids {
            let pts = g.points();
            prop_assert_eq!(pts.len(), g.num_steps() + 1);
            prop_assert!(pts.iter().all(|x| (0.0..=1.0).contains(x)));
            prop_assert!(pts.windows(2).all(|w| w[0] > w[1]));
            prop_assert!(g.steps().all(|(t, s)| t > s));
        }
    }

    #[test]
    fn alpha_uniform_has_equal_alpha_steps(n in 1usize..40) {
        let s = LogLinear::default();
        let g = TimeGrid::alpha_uniform(&s, n, 0.0).unwrap();
        let a: Vec<f64> = g.points().iter().map(|&t| s.alpha(t).unwrap()).collect();
        let step = (a[n] - a[0]) / n as f64;
        for w in a.windows(2) {
            prop_assert!((w[1] - w[0] - step).abs() < 1e-12);
        }
    }

    #[test]
    fn samplers_in_range_and_deterministic(seed in any::<u64>(), stream in any::<u64>(), step in any::<u32>(), n in 1usize..64, tmin in 0.0f64..0.9) {
        let key = RngKey::for_stream(seed, stream);
        let samplers: Vec<Box<dyn TimeSampler>> = vec![
            Box::new(Uniform::new(tmin).unwrap()),
            Box::new(Antithetic::new(tmin).unwrap()),
            Box::new(Stratified::new(tmin).unwrap()),
            Box::new(LogLinearImportance::new(Uniform::new(tmin).unwrap(), LogLinear::default())),
        ];
        for smp in &samplers {
            let mut a = vec![0.0; n];
            let mut b = vec![0.0; n];
            smp.sample_into(key, step, &mut a).unwrap();
            smp.sample_into(key, step, &mut b).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert!(a.iter().all(|&t| (0.0..=1.0).contains(&t)));
        }
        let mut ln = vec![0.0; n];
        LogitNormal::new(0.0, 1.0).unwrap().sample_into(key, step, &mut ln).unwrap();
        prop_assert!(ln.iter().all(|&t| t > 0.0 && t < 1.0));
        // Uniform and LogitNormal draws do not depend on the batch size (prefix property).
        let mut short = vec![0.0; n.div_ceil(2)];
        let mut full = vec![0.0; n];
        let u = Uniform::new(tmin).unwrap();
        u.sample_into(key, step, &mut short).unwrap();
        u.sample_into(key, step, &mut full).unwrap();
        prop_assert_eq!(&short[..], &full[..short.len()]);
        // Antithetic (MDLM) puts exactly one draw in each stratum [i/n, (i+1)/n).
        let mut at = vec![0.0; n];
        Antithetic::new(0.0).unwrap().sample_into(key, step, &mut at).unwrap();
        for (i, &t) in at.iter().enumerate() {
            prop_assert!(t >= i as f64 / n as f64 - 1e-15 && t < (i + 1) as f64 / n as f64 + 1e-15);
        }
    }
}

/// Pearson χ² statistic of `xs ∈ [0, 1)` against the uniform law on `bins` bins.
fn chi2_uniform(xs: &[f64], bins: usize) -> f64 {
    let mut counts = vec![0usize; bins];
    for &x in xs {
        counts[((x * bins as f64) as usize).min(bins - 1)] += 1;
    }
    let e = xs.len() as f64 / bins as f64;
    counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum()
}

#[test]
fn samplers_are_marginally_uniform() {
    // 20 000 pooled draws in 50 bins; reject at the 1e-4 upper quantile of χ²(49) (false-alarm
    // rate 1e-4 per check with fixed seeds, i.e. a deterministic test).
    let bins = 50;
    let crit = ChiSquared::new((bins - 1) as f64)
        .unwrap()
        .inverse_cdf(1.0 - 1e-4);
    let batch = 8;
    let samplers: Vec<(&str, Box<dyn TimeSampler>)> = vec![
        ("uniform", Box::new(Uniform::new(0.0).unwrap())),
        ("antithetic", Box::new(Antithetic::new(0.0).unwrap())),
        ("stratified", Box::new(Stratified::new(0.0).unwrap())),
    ];
    for (name, smp) in samplers {
        // All elements of 2 500 batches pooled: the batch law is uniform for every sampler.
        let mut xs = Vec::with_capacity(20_000);
        // Element 3 alone: marginally uniform for Uniform and Stratified (systematic), but
        // confined to its stratum [3/8, 4/8) for MDLM's antithetic sampler.
        let mut third = Vec::with_capacity(2_500);
        let mut out = vec![0.0; batch];
        for step in 0..2_500u32 {
            smp.sample_into(RngKey::for_stream(42, 1), step, &mut out)
                .unwrap();
            xs.extend_from_slice(&out);
            third.push(out[3]);
        }
        let stat = chi2_uniform(&xs, bins);
        assert!(stat < crit, "{name}: χ² = {stat} ≥ {crit}");
        if name == "antithetic" {
            assert!(third.iter().all(|&t| (0.375..0.5).contains(&t)));
        } else {
            let crit10 = ChiSquared::new(9.0).unwrap().inverse_cdf(1.0 - 1e-4);
            let stat = chi2_uniform(&third, 10);
            assert!(stat < crit10, "{name} element 3: χ² = {stat} ≥ {crit10}");
        }
    }
}

#[test]
fn logit_normal_has_the_right_logit_moments() {
    let (mu, sd) = (-0.5, 1.3);
    let n = 40_000;
    let mut t = vec![0.0; n];
    LogitNormal::new(mu, sd)
        .unwrap()
        .sample_into(RngKey::for_stream(9, 3), 0, &mut t)
        .unwrap();
    let z: Vec<f64> = t.iter().map(|&x| (x / (1.0 - x)).ln()).collect();
    let mean = z.iter().sum::<f64>() / n as f64;
    let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    // 5-sigma bands: sd/√n for the mean, sd²·√(2/n) for the variance.
    assert!(
        (mean - mu).abs() < 5.0 * sd / (n as f64).sqrt(),
        "mean {mean}"
    );
    assert!(
        (var - sd * sd).abs() < 5.0 * sd * sd * (2.0 / n as f64).sqrt(),
        "var {var}"
    );
}

#[test]
fn importance_sampling_has_density_proportional_to_inverse_t() {
    // Under the transformation, ln(1 − α(t')) = ln((1 − ε) t') is uniform between its
    // endpoints: check by χ² on the transformed log-times.
    let s = LogLinear::new(1e-3).unwrap();
    let lo = s.importance_sampling_transformation(0.0).unwrap().ln();
    let hi = s.importance_sampling_transformation(1.0).unwrap().ln();
    let smp = LogLinearImportance::new(Uniform::new(0.0).unwrap(), s);
    let mut t = vec![0.0; 20_000];
    smp.sample_into(RngKey::for_stream(5, 5), 0, &mut t)
        .unwrap();
    let v: Vec<f64> = t
        .iter()
        .map(|&x| ((x.ln() - lo) / (hi - lo)).min(0.999_999))
        .collect();
    let bins = 40;
    let crit = ChiSquared::new((bins - 1) as f64)
        .unwrap()
        .inverse_cdf(1.0 - 1e-4);
    assert!(chi2_uniform(&v, bins) < crit);
}

#[test]
fn bad_inputs_are_rejected() {
    let bad_t = [-0.1, 1.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
    let all: Vec<Box<dyn Schedule>> = vec![
        Box::new(LogLinear::default()),
        Box::new(MdlmCosine::default()),
        Box::new(MdlmCosineSqr::default()),
        Box::new(Linear::new()),
        Box::new(Polynomial::new(2.0).unwrap()),
        Box::new(Md4Cosine::new()),
        Box::new(FlowPolynomial::new(2.0).unwrap()),
        Box::new(Geometric::new(1e-4, 20.0).unwrap()),
        Box::new(LinearTotalNoise::new(1e-4, 20.0).unwrap()),
        Box::new(VariancePreserving::default()),
    ];
    for s in &all {
        for &t in &bad_t {
            assert!(is_invalid(s.alpha(t)), "{} alpha({t})", s.name());
            assert!(is_invalid(s.alpha_derivative(t)));
            assert!(is_invalid(s.total_noise(t)));
            assert!(is_invalid(s.noise_rate(t)));
            assert!(is_invalid(s.move_chance(t)));
            assert!(is_invalid(s.elbo_weight(t)));
            assert!(is_invalid(s.log_snr(t)));
            assert!(
                is_invalid(s.time_of_alpha(t)),
                "{} time_of_alpha({t})",
                s.name()
            );
            assert!(is_invalid(DefaultsOnly(&**s).time_of_alpha(t)));
            let k = Kappa::convex(&**s);
            assert!(is_invalid(k.kappa(t)));
            assert!(is_invalid(k.kappa_derivative(t)));
            assert!(is_invalid(k.sigma(t)));
            assert!(is_invalid(k.sigma_derivative(t)));
            assert!(is_invalid(k.snr(t)));
            assert!(is_invalid(k.kappa_inverse(t)));
        }
        assert!(is_invalid(Kappa::convex(&**s).snr_inverse(-1.0)));
        assert!(is_invalid(Kappa::convex(&**s).snr_inverse(f64::NAN)));
    }
    // α outside the schedule's range.
    assert!(is_invalid(LogLinear::new(0.1).unwrap().time_of_alpha(0.05)));
    assert!(is_invalid(
        Geometric::new(0.1, 2.0).unwrap().time_of_alpha(1.0)
    ));
    assert!(is_invalid(Linear::md4(0.1).unwrap().time_of_alpha(0.95)));
    assert!(is_invalid(
        VariancePreserving::default().time_of_alpha(1e-5)
    ));
    assert!(is_invalid(
        DefaultsOnly(Geometric::new(0.1, 2.0).unwrap()).time_of_alpha(0.99)
    ));

    // Constructors.
    for e in [0.0, 1.0, -0.1, f64::NAN, 1.5] {
        assert!(is_invalid(LogLinear::new(e)), "LogLinear eps {e}");
    }
    for e in [1.0, -0.1, f64::NAN] {
        assert!(is_invalid(MdlmCosine::new(e)));
        assert!(is_invalid(MdlmCosineSqr::new(e)));
    }
    for e in [0.5, -0.1, f64::NAN] {
        assert!(is_invalid(Linear::md4(e)));
        assert!(is_invalid(Md4Cosine::md4(e)));
        assert!(is_invalid(Polynomial::md4(2.0, e)));
    }
    for n in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(is_invalid(Polynomial::new(n)));
        assert!(is_invalid(FlowPolynomial::new(n)));
    }
    assert!(is_invalid(Geometric::new(0.0, 1.0)));
    assert!(is_invalid(Geometric::new(2.0, 1.0)));
    assert!(is_invalid(Geometric::new(1.0, f64::INFINITY)));
    assert!(is_invalid(LinearTotalNoise::new(-1.0, 1.0)));
    assert!(is_invalid(LinearTotalNoise::new(1.0, 1.0)));
    assert!(is_invalid(VariancePreserving::new(-0.1, 1.0)));
    assert!(is_invalid(VariancePreserving::new(2.0, 1.0)));
    assert!(is_invalid(VariancePreserving::new(0.0, 0.0)));
    // Importance sampling.
    for u in [-0.1, 1.1, f64::NAN] {
        assert!(is_invalid(
            LogLinear::default().importance_sampling_transformation(u)
        ));
        assert!(is_invalid(
            LinearTotalNoise::new(1e-4, 20.0)
                .unwrap()
                .importance_sampling_transformation(u)
        ));
    }
    assert!(is_invalid(
        LinearTotalNoise::new(0.0, 20.0)
            .unwrap()
            .importance_sampling_transformation(0.5)
    ));

    // Discrete schedules.
    assert!(is_invalid(BetaSchedule::from_betas(vec![])));
    assert!(is_invalid(BetaSchedule::from_betas(vec![0.1, 1.1])));
    assert!(is_invalid(BetaSchedule::from_betas(vec![-0.1])));
    assert!(is_invalid(BetaSchedule::from_betas(vec![f64::NAN])));
    assert!(is_invalid(BetaSchedule::linear(0, 0.1, 0.2)));
    assert!(is_invalid(BetaSchedule::linear(5, -0.1, 0.2)));
    assert!(is_invalid(BetaSchedule::linear(5, 0.1, 1.2)));
    assert!(is_invalid(BetaSchedule::cosine(0)));
    assert!(is_invalid(BetaSchedule::mutual_information(0)));
    assert!(is_invalid(BetaSchedule::text_standard(0, 1.0)));
    assert!(is_invalid(BetaSchedule::text_standard(4, 0.5)));
    assert!(is_invalid(BetaSchedule::text_linear(4, 0.3, 0.2)));
    assert!(is_invalid(BetaSchedule::text_linear(0, 0.1, 0.2)));
    assert!(is_invalid(BetaSchedule::d3pm_text(
        D3pmTextKind::Cosine,
        4,
        0.3,
        0.2,
        1.0
    )));
    assert!(is_invalid(BetaSchedule::d3pm_text(
        D3pmTextKind::Standard,
        4,
        0.1,
        0.2,
        0.9
    )));
    assert!(is_invalid(BetaSchedule::d3pm_text(
        D3pmTextKind::Linear,
        0,
        0.1,
        0.2,
        1.0
    )));
    let ll = LogLinear::default();
    assert!(is_invalid(BetaSchedule::from_continuous(&ll, &[])));
    assert!(is_invalid(BetaSchedule::from_continuous(&ll, &[0.0])));
    assert!(is_invalid(BetaSchedule::from_continuous(
        &ll,
        &[0.0, 0.5, 0.5]
    )));
    assert!(is_invalid(BetaSchedule::from_continuous(&ll, &[0.5, 0.2])));
    assert!(is_invalid(BetaSchedule::from_continuous(&ll, &[0.0, 1.5])));
    assert!(is_invalid(BetaSchedule::from_continuous(
        &ll,
        &[0.0, f64::NAN]
    )));
    let b = BetaSchedule::mutual_information(3).unwrap();
    assert!(is_invalid(b.beta(0)));
    assert!(is_invalid(b.beta(4)));
    assert!(is_invalid(b.alpha_bar(4)));
    assert!(is_invalid(b.log_alpha_bar(4)));

    // Mutual information.
    let pi = vec![0.5, 0.5, 0.0];
    assert!(is_invalid(relative_information_removal(
        ExponentialFamily::Uniform,
        -1.0,
        &pi
    )));
    assert!(is_invalid(relative_information_removal(
        ExponentialFamily::Uniform,
        f64::NAN,
        &pi
    )));
    assert!(is_invalid(relative_information_removal(
        ExponentialFamily::Mask { mask: 3 },
        1.0,
        &pi
    )));
    assert!(is_invalid(relative_information_removal(
        ExponentialFamily::Uniform,
        1.0,
        &[0.5, 0.6]
    )));
    assert!(is_invalid(relative_information_removal(
        ExponentialFamily::Uniform,
        1.0,
        &[1.0, 0.0]
    )));
    assert!(is_invalid(relative_information_removal(
        ExponentialFamily::Uniform,
        1.0,
        &[1.0]
    )));
    assert!(is_invalid(MutualInformationSchedule::new(
        ExponentialFamily::Uniform,
        pi.clone(),
        0
    )));
    let mut m = MutualInformationSchedule::new(ExponentialFamily::Uniform, pi.clone(), 4).unwrap();
    m.max_exponent = 1e-5;
    assert!(is_invalid(m.compute()));
    let mut m = MutualInformationSchedule::new(ExponentialFamily::Uniform, pi.clone(), 4).unwrap();
    m.interpolation_steps = 1;
    assert!(is_invalid(m.compute()));
    let mut m = MutualInformationSchedule::new(ExponentialFamily::Uniform, pi, 4).unwrap();
    m.max_exponent = 0.01; // cannot reach the requested removals
    assert!(is_invalid(m.compute()));
    assert!(is_invalid(pchip_interpolate(&[0.0], &[0.0], 0.0)));
    assert!(is_invalid(pchip_interpolate(&[0.0, 1.0], &[0.0], 0.0)));
    assert!(is_invalid(pchip_interpolate(&[1.0, 0.0], &[0.0, 1.0], 0.5)));
    assert!(is_invalid(pchip_interpolate(
        &[0.0, f64::NAN],
        &[0.0, 1.0],
        0.5
    )));

    // Samplers.
    let key = RngKey::for_stream(1, 2);
    for tmin in [-0.1, 1.0, f64::NAN] {
        assert!(is_invalid(Uniform::new(tmin)));
        assert!(is_invalid(Antithetic::new(tmin)));
        assert!(is_invalid(Stratified::new(tmin)));
    }
    assert!(is_invalid(LogitNormal::new(f64::NAN, 1.0)));
    assert!(is_invalid(LogitNormal::new(0.0, 0.0)));
    assert!(is_invalid(LogitNormal::new(0.0, -1.0)));
    let empty: &mut [f64] = &mut [];
    assert!(is_invalid(
        Uniform::new(0.0).unwrap().sample_into(key, 0, empty)
    ));
    assert!(is_invalid(
        Antithetic::new(0.0).unwrap().sample_into(key, 0, empty)
    ));
    assert!(is_invalid(
        Stratified::new(0.0).unwrap().sample_into(key, 0, empty)
    ));
    assert!(is_invalid(
        LogitNormal::new(0.0, 1.0)
            .unwrap()
            .sample_into(key, 0, empty)
    ));
    assert!(is_invalid(
        LogLinearImportance::new(Uniform::new(0.0).unwrap(), LogLinear::default())
            .sample_into(key, 0, empty)
    ));
    let a = Antithetic::new(0.0).unwrap();
    assert!(is_invalid(a.transform(&[0.5, 0.5], &mut [0.0])));
    assert!(is_invalid(a.transform(&[0.5, 1.5], &mut [0.0, 0.0])));
    assert!(is_invalid(a.transform(&[0.5, f64::NAN], &mut [0.0, 0.0])));

    // Grids.
    assert!(is_invalid(TimeGrid::uniform(0, 0.0)));
    assert!(is_invalid(TimeGrid::uniform(4, 1.0)));
    assert!(is_invalid(TimeGrid::uniform(4, -0.1)));
    assert!(is_invalid(TimeGrid::power(0, 2.0, 0.0)));
    assert!(is_invalid(TimeGrid::power(4, 0.0, 0.0)));
    assert!(is_invalid(TimeGrid::power(4, f64::NAN, 0.0)));
    assert!(is_invalid(TimeGrid::alpha_uniform(&ll, 0, 0.0)));
    assert!(is_invalid(TimeGrid::alpha_uniform(&ll, 4, f64::NAN)));
    assert!(is_invalid(TimeGrid::md4(0, Md4GridKind::Linear)));
    assert!(is_invalid(TimeGrid::from_points(vec![])));
    assert!(is_invalid(TimeGrid::from_points(vec![1.0])));
    assert!(is_invalid(TimeGrid::from_points(vec![0.2, 0.5])));
    assert!(is_invalid(TimeGrid::from_points(vec![1.0, 0.5, 0.5])));
    assert!(is_invalid(TimeGrid::from_points(vec![1.5, 0.5])));
    assert!(is_invalid(TimeGrid::from_points(vec![1.0, f64::NAN])));
    let g = TimeGrid::uniform(3, 0.0).unwrap();
    assert!(is_invalid(g.step(3)));
    assert!(is_invalid(flow_matching_time_grid(0.0, 0.0, 1.0)));
    assert!(is_invalid(flow_matching_time_grid(-0.1, 0.0, 1.0)));
    assert!(is_invalid(flow_matching_time_grid(f64::NAN, 0.0, 1.0)));
    assert!(is_invalid(flow_matching_time_grid(0.1, 0.5, 0.5)));
    assert!(is_invalid(flow_matching_time_grid(0.1, -0.5, 0.5)));
    assert!(is_invalid(flow_matching_time_grid(0.1, 0.0, 1.5)));
    assert!(is_invalid(flow_matching_time_grid(1e-12, 0.0, 1.0)));
    assert!(is_invalid(discretize_time(0.5, 0)));
    assert!(is_invalid(discretize_time(1.5, 10)));
    assert!(is_invalid(discretize_time(f64::NAN, 10)));
}

#[test]
fn edge_values_are_the_mathematical_limits() {
    // σ̄(1) = +∞ when α(1) = 0; NELBO weight +∞ at t = 0.
    let c = MdlmCosine::new(0.0).unwrap();
    assert!(c.total_noise(1.0).unwrap() > 36.0); // cos(π/2) is 6e-17 in f64
    assert_eq!(Linear::new().total_noise(1.0).unwrap(), f64::INFINITY);
    assert_eq!(
        LogLinear::default().elbo_weight(0.0).unwrap(),
        f64::INFINITY
    );
    assert_eq!(
        FlowPolynomial::new(2.0).unwrap().noise_rate(1.0).unwrap(),
        f64::INFINITY
    );
    assert_eq!(discretize_time(1.0, 10).unwrap(), 1.0);
    assert_eq!(discretize_time(0.0, 10).unwrap(), 0.1);
    // Absorbed steps in from_continuous give β = 1.
    let b = BetaSchedule::from_continuous(&Linear::new(), &[0.0, 0.5, 1.0]).unwrap();
    assert_eq!(b.betas(), &[0.5, 1.0]);
    assert_eq!(b.alpha_bar(2).unwrap(), 0.0);
}
