//! Dense CTMC generators: a validated `V×V` rate matrix with `exp(sQ)` by one symmetric
//! eigendecomposition (symmetric generators) or by Padé scaling-and-squaring (any generator).
//!
//! * **Eigen** (`Q = Qᵀ`, e.g. birth–death, discretised-Gaussian or similarity generators):
//!   `Q = U Λ Uᵀ` once ([`symmetric_eigen`], f64); then
//!   `exp(sQ)[x, ·] = Σ_k U[x, k] e^{sλ_k} U[·, k]`, so a row, a column (`exp(sQ)` is
//!   symmetric) or `pᵀ exp(sQ)` costs `O(V²)` for any `s`, including `s = ∞` (the projection
//!   on the null space of `Q`). Memory `2V²` f64.
//! * **Padé** (any `Q`, e.g. tauLDR's Gaussian-target rate): `exp(sQ)` by
//!   [`expm`] (`O(V³)`), cached for the last `s` only: repeated rows at the same `s` (a
//!   sampler step, a loss over a batch sharing `t`) cost `O(V)` each after one `O(V³)`
//!   evaluation; a new `s` evicts it. Memory `2V²` f64. `s = ∞` is an error (no limit is
//!   known for a general generator). The cache sits behind a mutex (one lock per call):
//!   threads that work at different `s` should each hold their own clone (a clone starts
//!   with an empty cache).
//!
//! Both clamp the round-off negatives (`|·| ~ 1e-16`) of the exact non-negative entries to 0.

use std::sync::Mutex;

use ndarray::{Array1, Array2};

use super::{RateGenerator, check_total_noise};
use crate::error::{Error, Result};
use crate::kernel::generator::{ExpRoute, Generator};
use crate::kernel::{check_state_out, check_vec_out};
use crate::linalg::expm::expm;
use crate::linalg::symmetric_eigen;

#[derive(Debug)]
enum Repr {
    Eigen {
        /// Eigenvalues, round-off positives and near-zeros snapped to exactly 0.
        lambda: Array1<f64>,
        /// Eigenvectors in columns.
        u: Array2<f64>,
    },
    Pade {
        /// `(s, exp(sQ))` for the last `s` asked.
        cache: Mutex<Option<(f64, Array2<f64>)>>,
    },
}

/// A dense [`RateGenerator`] over a validated [`Generator`] (row convention, rows sum to 0);
/// see the [module docs](self) for the two evaluation routes and their cost.
///
/// ```
/// use discrete_diffusion::kernel::ctmc::{RateGenerator, dense::DenseGenerator};
/// use discrete_diffusion::kernel::generator::Generator;
/// let g = DenseGenerator::new(Generator::uniform(3)?)?; // symmetric: eigen route
/// let mut row = [0.0; 3];
/// g.transition_row(0, 0.5, &mut row)?;
/// let a = (-0.5f64).exp();
/// assert!((row[0] - (a + (1.0 - a) / 3.0)).abs() < 1e-14);
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
#[derive(Debug)]
pub struct DenseGenerator {
    generator: Generator,
    repr: Repr,
}

impl Clone for DenseGenerator {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            Repr::Eigen { lambda, u } => Repr::Eigen {
                lambda: lambda.clone(),
                u: u.clone(),
            },
            Repr::Pade { .. } => Repr::Pade {
                cache: Mutex::new(None),
            },
        };
        DenseGenerator {
            generator: self.generator.clone(),
            repr,
        }
    }
}

impl DenseGenerator {
    /// The eigen route when the generator is symmetric, Padé otherwise.
    ///
    /// # Errors
    /// [`Error::Numerical`] if the eigendecomposition fails.
    pub fn new(generator: Generator) -> Result<Self> {
        Self::with_route(generator, ExpRoute::Auto)
    }

    /// An explicit route. [`ExpRoute::Eigen`] needs a symmetric generator.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `Eigen` on a non-symmetric generator;
    /// [`Error::Numerical`] if the eigendecomposition fails.
    pub fn with_route(generator: Generator, route: ExpRoute) -> Result<Self> {
        let eigen = match route {
            ExpRoute::Auto => generator.is_symmetric(),
            ExpRoute::Pade => false,
            ExpRoute::Eigen => {
                if !generator.is_symmetric() {
                    return Err(Error::invalid(
                        "route",
                        "the eigen route needs a symmetric generator (Q = Qᵀ); use Pade",
                    ));
                }
                true
            }
        };
        let repr = if eigen {
            let q = generator.matrix();
            // Symmetrise exactly (the generator is symmetric within 1e-12·max|Q|).
            let sym = Array2::from_shape_fn(q.dim(), |(i, j)| 0.5 * (q[[i, j]] + q[[j, i]]));
            let (mut lambda, u) = symmetric_eigen(sym.view())?;
            let scale = q.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let tol = 1e-12 * scale * q.nrows() as f64;
            lambda.mapv_inplace(|l| if l > -tol { 0.0 } else { l });
            Repr::Eigen { lambda, u }
        } else {
            Repr::Pade {
                cache: Mutex::new(None),
            }
        };
        Ok(DenseGenerator { generator, repr })
    }

    /// The validated rate matrix.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Whether `exp(sQ)` is evaluated by the eigen route.
    pub fn is_eigen(&self) -> bool {
        matches!(self.repr, Repr::Eigen { .. })
    }

    /// Run `f` on the Padé `exp(sQ)` (cached for the last `s`).
    fn with_pade<R>(
        &self,
        cache: &Mutex<Option<(f64, Array2<f64>)>>,
        s: f64,
        f: impl FnOnce(&Array2<f64>) -> R,
    ) -> Result<R> {
        if s.is_infinite() {
            return Err(Error::invalid(
                "sigma_bar",
                "s = ∞ has no known limit on the Padé route (use a symmetric generator)",
            ));
        }
        let mut guard = cache.lock().map_err(|_| Error::Numerical {
            what: "DenseGenerator",
            reason: "the exp(sQ) cache lock was poisoned".into(),
        })?;
        let hit = matches!(&*guard, Some((c, _)) if c.to_bits() == s.to_bits());
        if !hit {
            let q = self.generator.matrix();
            let mut e = expm((&q * s).view())?;
            e.mapv_inplace(|x| x.max(0.0));
            *guard = Some((s, e));
        }
        let (_, e) = guard.as_ref().expect("cache filled above");
        Ok(f(e))
    }
}

/// `e^{sλ}` for `λ ≤ 0`, `s ∈ [0, ∞]` (with `0·∞ = 0`: the null space is kept).
#[inline]
fn decay(s: f64, l: f64) -> f64 {
    if l == 0.0 { 1.0 } else { (s * l).exp() }
}

impl RateGenerator for DenseGenerator {
    fn vocab_size(&self) -> usize {
        self.generator.vocab_size()
    }

    fn rate_row(&self, x: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("x", x, self.vocab_size(), out)?;
        for (o, &q) in out.iter_mut().zip(self.generator.matrix().row(x as usize)) {
            *o = q;
        }
        Ok(())
    }

    fn rate_col(&self, y: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("y", y, self.vocab_size(), out)?;
        for (o, &q) in out
            .iter_mut()
            .zip(self.generator.matrix().column(y as usize))
        {
            *o = q;
        }
        Ok(())
    }

    fn transition_row(&self, x: u32, s: f64, out: &mut [f64]) -> Result<()> {
        check_state_out("x", x, self.vocab_size(), out)?;
        let s = check_total_noise(s)?;
        match &self.repr {
            Repr::Eigen { lambda, u } => {
                // c_k = U[x, k] e^{sλ_k}: V exponentials, then V² multiply-adds.
                let c: Vec<f64> = u
                    .row(x as usize)
                    .iter()
                    .zip(lambda)
                    .map(|(&uk, &l)| uk * decay(s, l))
                    .collect();
                for (y, o) in out.iter_mut().enumerate() {
                    let acc: f64 = u.row(y).iter().zip(&c).map(|(a, b)| a * b).sum();
                    *o = acc.max(0.0);
                }
                Ok(())
            }
            Repr::Pade { cache } => self.with_pade(cache, s, |e| {
                for (o, &q) in out.iter_mut().zip(e.row(x as usize)) {
                    *o = q;
                }
            }),
        }
    }

    fn transition_col(&self, y: u32, s: f64, out: &mut [f64]) -> Result<()> {
        check_state_out("y", y, self.vocab_size(), out)?;
        let s = check_total_noise(s)?;
        match &self.repr {
            // exp(sQ) is symmetric with Q.
            Repr::Eigen { .. } => self.transition_row(y, s, out),
            Repr::Pade { cache } => self.with_pade(cache, s, |e| {
                for (o, &q) in out.iter_mut().zip(e.column(y as usize)) {
                    *o = q;
                }
            }),
        }
    }

    fn transition_vecmat(&self, p: &[f64], s: f64, out: &mut [f64]) -> Result<()> {
        let v = self.vocab_size();
        check_vec_out(p, v, out)?;
        let s = check_total_noise(s)?;
        crate::validate::all_finite("p", p)?;
        match &self.repr {
            Repr::Eigen { lambda, u } => {
                let mut c = vec![0.0; v];
                for (x, &w) in p.iter().enumerate() {
                    if w != 0.0 {
                        for (ck, &uk) in c.iter_mut().zip(u.row(x)) {
                            *ck += w * uk;
                        }
                    }
                }
                for (ck, &l) in c.iter_mut().zip(lambda) {
                    *ck *= decay(s, l);
                }
                for (y, o) in out.iter_mut().enumerate() {
                    let acc: f64 = u.row(y).iter().zip(&c).map(|(a, b)| a * b).sum();
                    *o = acc.max(0.0);
                }
                Ok(())
            }
            Repr::Pade { cache } => self.with_pade(cache, s, |e| {
                out.fill(0.0);
                for (x, &w) in p.iter().enumerate() {
                    if w != 0.0 {
                        for (o, &q) in out.iter_mut().zip(e.row(x)) {
                            *o += w * q;
                        }
                    }
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_and_pade_agree_and_cache_is_consistent() {
        let g = Generator::uniform(4).unwrap();
        let e = DenseGenerator::with_route(g.clone(), ExpRoute::Eigen).unwrap();
        let p = DenseGenerator::with_route(g, ExpRoute::Pade).unwrap();
        assert!(e.is_eigen() && !p.is_eigen());
        let (mut a, mut b) = ([0.0; 4], [0.0; 4]);
        for &s in &[0.0, 0.3, 0.3, 4.0] {
            for x in 0..4 {
                e.transition_row(x, s, &mut a).unwrap();
                p.transition_row(x, s, &mut b).unwrap();
                for y in 0..4 {
                    assert!((a[y] - b[y]).abs() < 1e-13);
                }
            }
        }
        e.transition_row(1, f64::INFINITY, &mut a).unwrap();
        assert!(a.iter().all(|&q| (q - 0.25).abs() < 1e-14));
        assert!(p.transition_row(1, f64::INFINITY, &mut b).is_err());
        let abs = Generator::absorbing(3, 0).unwrap();
        assert!(DenseGenerator::with_route(abs, ExpRoute::Eigen).is_err());
    }
}
