//! D3PM training objectives (Austin et al. 2021, §3.3–3.4): the variational bound terms
//! `L_T`, `L_{t−1}`, `L_0`, the auxiliary x0 cross-entropy and the hybrid loss
//! `L_vb + λ·L_CE`, as values **and** gradients with respect to the model's x0 logits.
//!
//! The model outputs logits `ℓ` over clean tokens; `p̃_θ(x_0 | x_t) = softmax(ℓ)` and the
//! reverse step is D3PM's joint form (eq. 4, [`p_reverse_joint`]):
//! `p_θ(x_{t−1} | x_t) ∝ Q_t(x_{t−1}, x_t) · (p̃_θᵀ Q̄_{t−1})(x_{t−1})`.
//!
//! Logits may be `f32` or `f64` (any [`num_traits::Float`]); everything is accumulated in
//! `f64` and gradients are written back in the logits' type. Values are in nats; divide by
//! `ln 2` ([`to_bits`]) for bits. Scratch lives in a reusable [`D3pmWorkspace`]: no
//! allocation per call at a fixed `V`.
//!
//! Training code calls the batched entry point [`hybrid_loss_batch`] over `[B, L, V]`
//! logits, `[B, L]` tokens and one step `t` per sequence; the per-position functions
//! ([`hybrid_loss`], [`vb_term`], [`posterior_kl`], [`decoder_nll`], [`x0_cross_entropy`],
//! [`prior_kl`]) are its building blocks.
//!
//! The softmax/KL helpers here are private and minimal; they will be shared with
//! `crate::math` once that module lands.

use ndarray::{ArrayView1, ArrayView2, ArrayView3, ArrayViewMut3, s};
use num_traits::Float;

use crate::error::{Error, Result};
#[cfg(doc)]
use crate::kernel::posterior::p_reverse_joint;
use crate::kernel::posterior::{PosteriorWorkspace, q_posterior};
use crate::kernel::{ForwardKernel, check_step};
use crate::validate;

/// Nats to bits: `x / ln 2`.
pub fn to_bits(nats: f64) -> f64 {
    nats / std::f64::consts::LN_2
}

/// Which decoder `p_θ(x_0 | x_1)` the `L_0` term uses.
///
/// D3PM's two reference codes differ here: the images code decodes with the model's x0
/// prediction itself, the text code with the joint-form reverse step at `t = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decoder {
    /// `p_θ(x_0 | x_1) = p̃_θ(x_0 | x_1) = softmax(ℓ)` (D3PM images anchor,
    /// `vb_terms_bpd` at its `t = 0`).
    #[default]
    Direct,
    /// `p_θ(x_0 | x_1) ∝ Q_1(x_0, x_1) p̃_θ(x_0 | x_1)`: the joint form at `t = 1`, a
    /// Bayes-reweighted prediction (D3PM text anchor; consistent with `L_{t−1}`).
    Joint,
}

/// Reusable scratch for the D3PM losses (resized to `V` on demand; one per thread).
#[derive(Debug, Clone, Default)]
pub struct D3pmWorkspace {
    post: PosteriorWorkspace,
    p0: Vec<f64>,
    q: Vec<f64>,
    m: Vec<f64>,
    c: Vec<f64>,
    s: Vec<f64>,
}

impl D3pmWorkspace {
    /// A workspace pre-sized for `V` states.
    pub fn new(v: usize) -> Self {
        let mut ws = D3pmWorkspace::default();
        ws.resize(v);
        ws
    }

    fn resize(&mut self, v: usize) {
        for b in [
            &mut self.p0,
            &mut self.q,
            &mut self.m,
            &mut self.c,
            &mut self.s,
        ] {
            if b.len() != v {
                b.resize(v, 0.0);
            }
        }
    }
}

/// The terms of the hybrid loss at one position, in nats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridLoss {
    /// The variational-bound term: `L_{t−1}` for `t ≥ 2`, `L_0` for `t = 1`.
    pub vb: f64,
    /// The auxiliary cross-entropy `−log p̃_θ(x_0 | x_t)`.
    pub ce: f64,
    /// `vb + λ·ce`.
    pub total: f64,
}

/// Validate logits (length `V`, finite) and write `p = softmax(ℓ)` in f64; returns
/// `logsumexp(ℓ)`.
fn softmax_into<F: Float>(logits: &[F], v: usize, p: &mut [f64]) -> Result<f64> {
    validate::len("logits", logits.len(), v)?;
    validate::all_finite("logits", logits)?;
    crate::math::softmax_into(logits, p)
}

fn check_grad<F>(grad: &Option<&mut [F]>, v: usize) -> Result<()> {
    if let Some(g) = grad {
        validate::len("grad", g.len(), v)?;
    }
    Ok(())
}

fn cast<F: Float>(x: f64) -> F {
    F::from(x).unwrap_or_else(F::nan)
}

/// The prior term `L_T = KL(q(x_T | x_0) ‖ π_stationary)` in nats (Austin et al. 2021,
/// eq. 1; no learned parameters). `+∞` when `q(x_T | x_0)` puts mass where the stationary
/// law has none.
pub fn prior_kl<K: ForwardKernel + ?Sized>(
    kernel: &K,
    x0: u32,
    ws: &mut D3pmWorkspace,
) -> Result<f64> {
    let v = kernel.vocab_size();
    validate::token("x0", x0, v)?;
    ws.resize(v);
    kernel.cumulative_row(kernel.num_steps(), x0, &mut ws.q)?;
    kernel.stationary(&mut ws.m)?;
    let mut kl = 0.0;
    for (&q, &p) in ws.q.iter().zip(&ws.m) {
        if q > 0.0 {
            if p <= 0.0 {
                return Ok(f64::INFINITY);
            }
            kl += q * (q / p).ln();
        }
    }
    Ok(kl.max(0.0))
}

/// [`prior_kl`] in bits (D3PM's `prior_bpd` for one token, without the anchor's `1e-6`
/// smoothing).
pub fn prior_bits<K: ForwardKernel + ?Sized>(
    kernel: &K,
    x0: u32,
    ws: &mut D3pmWorkspace,
) -> Result<f64> {
    prior_kl(kernel, x0, ws).map(to_bits)
}

/// `L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))` for `t ∈ 2..=T`, in nats, with
/// `p_θ` the joint form from `softmax(logits)` (Austin et al. 2021, eq. 1 and 4), and
/// optionally its gradient with respect to the logits.
///
/// With `m = p̃ᵀ Q̄_{t−1}`, `c = Q_t(·, x_t)`, `Z = Σ_j c_j m_j` and `q` the posterior,
/// `∂L/∂p̃_k = −(Q̄_{t−1} r)_k + Q̄_t(k, x_t)/Z` with `r_j = q_j/m_j`, and through the
/// softmax `∂L/∂ℓ_k = p̃_k (∂L/∂p̃_k − Σ_i p̃_i ∂L/∂p̃_i)`. The product `Q̄_{t−1} r` costs
/// `O(V)` for mixture kernels through [`ForwardKernel::cumulative_matvec`].
///
/// Errors: `t ∉ 2..=T`, bad tokens or lengths, non-finite logits;
/// [`Error::ZeroProbability`] when `q(x_t | x_0) = 0`; [`Error::Numerical`] when
/// `p_θ` underflows to 0 on the posterior's support (the KL is infinite).
pub fn posterior_kl<K: ForwardKernel + ?Sized, F: Float>(
    kernel: &K,
    t: usize,
    x_t: u32,
    x0: u32,
    logits: &[F],
    ws: &mut D3pmWorkspace,
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let v = kernel.vocab_size();
    if t < 2 {
        return Err(Error::invalid(
            "t",
            format!("L_{{t−1}} is defined for t ∈ 2..=T, got t = {t} (use decoder_nll for t = 1)"),
        ));
    }
    check_step(t, kernel.num_steps(), false)?;
    validate::token("x_t", x_t, v)?;
    validate::token("x0", x0, v)?;
    check_grad(&grad, v)?;
    ws.resize(v);
    softmax_into(logits, v, &mut ws.p0)?;
    q_posterior(kernel, t, x_t, x0, &mut ws.post, &mut ws.q)?;
    kernel.cumulative_vecmat(t - 1, &ws.p0, &mut ws.m)?;
    kernel.step_col(t, x_t, &mut ws.c)?;
    let z: f64 = ws.c.iter().zip(&ws.m).map(|(c, m)| c * m).sum();
    let mut kl = 0.0;
    for j in 0..v {
        let q = ws.q[j];
        if q > 0.0 {
            let pm = ws.c[j] * ws.m[j];
            if pm <= 0.0 || z <= 0.0 || pm.is_nan() || z.is_nan() {
                return Err(Error::Numerical {
                    what: "D3PM L_{t−1}",
                    reason: format!(
                        "p_θ(x_{{t−1}} = {j} | x_t) underflowed to 0 where the posterior has mass {q}"
                    ),
                });
            }
            kl += q * (q * z / pm).ln();
        }
    }
    if let Some(g) = grad {
        // r = q / m on supp q (m > 0 there, checked above).
        for j in 0..v {
            ws.m[j] = if ws.q[j] > 0.0 {
                ws.q[j] / ws.m[j]
            } else {
                0.0
            };
        }
        kernel.cumulative_matvec(t - 1, &ws.m, &mut ws.s)?;
        kernel.cumulative_col(t, x_t, &mut ws.c)?;
        let mut mean = 0.0;
        for k in 0..v {
            ws.s[k] = ws.c[k] / z - ws.s[k];
            mean += ws.p0[k] * ws.s[k];
        }
        for (k, gk) in g.iter_mut().enumerate() {
            *gk = cast(ws.p0[k] * (ws.s[k] - mean));
        }
    }
    Ok(kl.max(0.0))
}

/// `L_0 = −log p_θ(x_0 | x_1)` in nats, with the decoder chosen by `decoder`
/// ([`Decoder::Direct`]: `softmax(ℓ)[x_0]`; [`Decoder::Joint`]:
/// `∝ Q_1(x_0, x_1) softmax(ℓ)[x_0]`), and optionally its gradient
/// `∂L_0/∂ℓ = p_θ(· | x_1) − e_{x_0}`.
///
/// Errors: bad tokens, lengths, non-finite logits; the kernel must have `T ≥ 1`; with
/// [`Decoder::Joint`], [`Error::ZeroProbability`] when `Q_1(x_0, x_1) = 0`.
#[allow(clippy::too_many_arguments)]
pub fn decoder_nll<K: ForwardKernel + ?Sized, F: Float>(
    kernel: &K,
    x1: u32,
    x0: u32,
    logits: &[F],
    decoder: Decoder,
    ws: &mut D3pmWorkspace,
    grad: Option<&mut [F]>,
) -> Result<f64> {
    let v = kernel.vocab_size();
    validate::token("x1", x1, v)?;
    validate::token("x0", x0, v)?;
    check_grad(&grad, v)?;
    ws.resize(v);
    let lse = softmax_into(logits, v, &mut ws.p0)?;
    // log p̃(x_0) in log space, exact even when the probability underflows.
    let log_p0 = logits[x0 as usize].to_f64().unwrap_or(f64::NAN) - lse;
    let nll = match decoder {
        Decoder::Direct => -log_p0,
        Decoder::Joint => {
            kernel.step_col(1, x1, &mut ws.c)?;
            let c0 = ws.c[x0 as usize];
            if c0 <= 0.0 || c0.is_nan() {
                return Err(Error::ZeroProbability {
                    what: format!("q(x_1 = {x1} | x_0 = {x0}) = 0: L_0 is undefined"),
                });
            }
            let mut z = 0.0;
            for (p, c) in ws.p0.iter_mut().zip(&ws.c) {
                *p *= c;
                z += *p;
            }
            if z <= 0.0 || z.is_nan() {
                return Err(Error::Numerical {
                    what: "D3PM L_0",
                    reason: "the joint-form decoder's normaliser underflowed".into(),
                });
            }
            ws.p0.iter_mut().for_each(|p| *p /= z);
            -(c0.ln() + log_p0 - z.ln())
        }
    };
    if let Some(g) = grad {
        for (k, gk) in g.iter_mut().enumerate() {
            let d = if k == x0 as usize { 1.0 } else { 0.0 };
            *gk = cast(ws.p0[k] - d);
        }
    }
    Ok(nll)
}

/// The auxiliary cross-entropy `L_CE = −log p̃_θ(x_0 | x_t) = logsumexp(ℓ) − ℓ_{x_0}` in nats
/// (Austin et al. 2021, §3.4), and optionally its gradient `softmax(ℓ) − e_{x_0}`.
/// One pass over the logits for the value, one more for the gradient; no allocation.
pub fn x0_cross_entropy<F: Float>(logits: &[F], x0: u32, grad: Option<&mut [F]>) -> Result<f64> {
    let v = logits.len();
    validate::vocab("logits", v)?;
    validate::token("x0", x0, v)?;
    validate::all_finite("logits", logits)?;
    check_grad(&grad, v)?;
    let f = |l: &F| l.to_f64().unwrap_or(f64::NAN);
    let lse = crate::math::logsumexp(logits)?;
    if let Some(g) = grad {
        for (k, (gk, l)) in g.iter_mut().zip(logits).enumerate() {
            let d = if k == x0 as usize { 1.0 } else { 0.0 };
            *gk = cast((f(l) - lse).exp() - d);
        }
    }
    Ok(lse - f(&logits[x0 as usize]))
}

/// The variational-bound term at step `t ∈ 1..=T`: [`decoder_nll`] (`L_0`) at `t = 1`,
/// [`posterior_kl`] (`L_{t−1}`) for `t ≥ 2`, with optional gradient.
#[allow(clippy::too_many_arguments)]
pub fn vb_term<K: ForwardKernel + ?Sized, F: Float>(
    kernel: &K,
    t: usize,
    x_t: u32,
    x0: u32,
    logits: &[F],
    decoder: Decoder,
    ws: &mut D3pmWorkspace,
    grad: Option<&mut [F]>,
) -> Result<f64> {
    check_step(t, kernel.num_steps(), false)?;
    if t == 1 {
        decoder_nll(kernel, x_t, x0, logits, decoder, ws, grad)
    } else {
        posterior_kl(kernel, t, x_t, x0, logits, ws, grad)
    }
}

/// D3PM's hybrid loss at one position (Austin et al. 2021, §3.4, eq. 5):
/// `L_λ = L_vb(t) + λ · (−log p̃_θ(x_0 | x_t))`, with `L_vb` from [`vb_term`], `λ ≥ 0`
/// finite. Returns the three numbers (nats) and, optionally, the gradient of `total`
/// with respect to the logits. (The anchors report these in bits: see [`to_bits`].)
#[allow(clippy::too_many_arguments)]
pub fn hybrid_loss<K: ForwardKernel + ?Sized, F: Float>(
    kernel: &K,
    t: usize,
    x_t: u32,
    x0: u32,
    logits: &[F],
    lambda: f64,
    decoder: Decoder,
    ws: &mut D3pmWorkspace,
    mut grad: Option<&mut [F]>,
) -> Result<HybridLoss> {
    validate::finite("lambda", lambda)?;
    if lambda < 0.0 {
        return Err(Error::invalid(
            "lambda",
            format!("λ = {lambda} must be ≥ 0"),
        ));
    }
    let v = kernel.vocab_size();
    check_grad(&grad, v)?;
    let vb = vb_term(kernel, t, x_t, x0, logits, decoder, ws, grad.as_deref_mut())?;
    let ce = x0_cross_entropy(logits, x0, None)?;
    if let Some(g) = grad {
        // Add λ (softmax − e_{x0}); ws.p0 may hold a reweighted law, so recompute.
        softmax_into(logits, v, &mut ws.p0)?;
        for (k, gk) in g.iter_mut().enumerate() {
            let d = if k == x0 as usize { 1.0 } else { 0.0 };
            let prev = gk.to_f64().unwrap_or(f64::NAN);
            *gk = cast(prev + lambda * (ws.p0[k] - d));
        }
    }
    Ok(HybridLoss {
        vb,
        ce,
        total: vb + lambda * ce,
    })
}

/// D3PM's hybrid loss over a batch of sequences (Austin et al. 2021, §3.4, eq. 5), the
/// entry point for training: for sequence `b` at its step `t_b = steps[b]`,
///
/// ```text
/// vb_b    = Σ_{l<L} L_vb(t_b; x_t[b, l], x0[b, l], logits[b, l, :])   (L_{t−1}, or L_0 at t = 1)
/// ce_b    = Σ_{l<L} −log softmax(logits[b, l, :])[x0[b, l]]
/// total_b = Σ_{l<L} (L_vb + λ·L_CE)(b, l)
/// ```
///
/// each term exactly as [`hybrid_loss`] computes it for one position (the sums run over
/// `l = 0, 1, …` in order, so the result equals the per-position sum bit for bit).
///
/// **Reduction.** One [`HybridLoss`] per sequence, summed (not averaged) over its `L`
/// positions, in nats. D3PM reports the mean over positions in bits per dimension:
/// `to_bits(total_b / L)` ([`to_bits`]); a batch mean is `Σ_b total_b / (B·L)`.
///
/// **Gradient.** With `grad = Some(g)` (shape `[B, L, V]`), `g[b, l, :] = ∂ total_b /
/// ∂ logits[b, l, :]` (each position's logits enter only their own term), written in the
/// logits' type; scale it by the same factor as the loss for a mean reduction.
///
/// Arguments: `logits` `[B, L, V]` with `V = kernel.vocab_size()` (f32 or f64, any
/// strides), `x0` and `x_t` `[B, L]` (clean and noisy tokens, `x_t` being `x_1` where
/// `t_b = 1`), `steps` `[B]` with every `t_b ∈ 1..=T`, `λ ≥ 0`, the `L_0` [`Decoder`]. One
/// workspace serves every position: no allocation per position (a single scratch row is
/// allocated per call only when the last axis of `logits` or `grad` is not contiguous).
///
/// # Errors
/// Checked before any work: [`Error::Shape`] naming `logits` (wrong `V`), `x0`, `x_t`,
/// `steps` or `grad` on a shape mismatch; [`Error::InvalidArgument`] for an empty batch
/// (`B = 0` or `L = 0`), a step outside `1..=T` (naming `steps`) or a bad `λ`;
/// [`Error::TokenOutOfRange`] for a token `≥ V` (flat index in `x0`/`x_t`);
/// [`Error::NonFinite`] for NaN/∞ logits (flat index). Then, per position (the message
/// names the sequence and position): [`Error::ZeroProbability`] when `q(x_t | x_0) = 0`
/// (or `Q_1(x_0, x_1) = 0` with [`Decoder::Joint`]); [`Error::Numerical`] when `p_θ`
/// underflows on the posterior's support. After an error the contents of `grad` are
/// unspecified.
///
/// ```
/// use discrete_diffusion::kernel::uniform::Uniform;
/// use discrete_diffusion::loss::d3pm::{D3pmWorkspace, Decoder, hybrid_loss_batch};
/// use ndarray::{Array1, Array2, Array3};
///
/// let k = Uniform::new(4, &[0.1, 0.2, 0.3]).unwrap();
/// let logits = Array3::<f32>::zeros((2, 3, 4)); // B = 2 sequences of L = 3 tokens
/// let x0 = Array2::<u32>::from_shape_vec((2, 3), vec![0, 1, 2, 3, 0, 1]).unwrap();
/// let xt = Array2::<u32>::from_shape_vec((2, 3), vec![0, 2, 2, 3, 3, 1]).unwrap();
/// let steps = Array1::from(vec![1usize, 3]);
/// let mut grad = Array3::<f32>::zeros((2, 3, 4));
/// let mut ws = D3pmWorkspace::new(4);
/// let losses = hybrid_loss_batch(
///     &k, logits.view(), x0.view(), xt.view(), steps.view(), 0.01, Decoder::Direct,
///     &mut ws, Some(grad.view_mut()),
/// ).unwrap();
/// // Uniform predictions: the cross-entropy is ln 4 per position.
/// assert!((losses[0].ce - 3.0 * 4f64.ln()).abs() < 1e-12);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn hybrid_loss_batch<K: ForwardKernel + ?Sized, F: Float>(
    kernel: &K,
    logits: ArrayView3<'_, F>,
    x0: ArrayView2<'_, u32>,
    x_t: ArrayView2<'_, u32>,
    steps: ArrayView1<'_, usize>,
    lambda: f64,
    decoder: Decoder,
    ws: &mut D3pmWorkspace,
    mut grad: Option<ArrayViewMut3<'_, F>>,
) -> Result<Vec<HybridLoss>> {
    let v = kernel.vocab_size();
    let (b, l, lv) = logits.dim();
    check_batch_shapes(kernel, logits.dim(), x0, x_t, steps)?;
    if let Some(g) = &grad
        && g.dim() != logits.dim()
    {
        return Err(Error::shape(
            "grad",
            format!("[{b}, {l}, {lv}] like logits"),
            format!("{:?}", g.dim()),
        ));
    }
    validate::finite("lambda", lambda)?;
    if lambda < 0.0 {
        return Err(Error::invalid(
            "lambda",
            format!("λ = {lambda} must be ≥ 0"),
        ));
    }
    validate::tokens("x0", x0.iter(), v)?;
    validate::tokens("x_t", x_t.iter(), v)?;
    validate::all_finite("logits", logits.iter())?;
    ws.resize(v);
    // Scratch rows for non-contiguous lanes, allocated at most once per call.
    let mut row_in: Vec<F> = Vec::new();
    let mut row_grad: Vec<F> = Vec::new();
    let mut out = Vec::with_capacity(b);
    for (bi, &t) in steps.iter().enumerate() {
        let mut acc = HybridLoss {
            vb: 0.0,
            ce: 0.0,
            total: 0.0,
        };
        for li in 0..l {
            let lane = logits.slice(s![bi, li, ..]);
            let row: &[F] = match lane.to_slice() {
                Some(r) => r,
                None => {
                    row_in.clear();
                    row_in.extend(lane.iter().copied());
                    &row_in
                }
            };
            let (xt, x0i) = (x_t[[bi, li]], x0[[bi, li]]);
            let h = match grad.as_mut() {
                None => hybrid_loss(kernel, t, xt, x0i, row, lambda, decoder, ws, None),
                Some(g) => {
                    let mut lane = g.slice_mut(s![bi, li, ..]);
                    match lane.as_slice_mut() {
                        Some(gr) => {
                            hybrid_loss(kernel, t, xt, x0i, row, lambda, decoder, ws, Some(gr))
                        }
                        None => {
                            row_grad.resize(v, F::zero());
                            let h = hybrid_loss(
                                kernel,
                                t,
                                xt,
                                x0i,
                                row,
                                lambda,
                                decoder,
                                ws,
                                Some(&mut row_grad),
                            );
                            lane.iter_mut().zip(&row_grad).for_each(|(o, &x)| *o = x);
                            h
                        }
                    }
                }
            }
            .map_err(|e| at_position(e, bi, li))?;
            acc.vb += h.vb;
            acc.ce += h.ce;
            acc.total += h.total;
        }
        out.push(acc);
    }
    Ok(out)
}

/// Shapes of a batched call: logits `[B, L, V]` with `B, L ≥ 1` and `V` the kernel's,
/// tokens `[B, L]`, steps `[B]` each in `1..=T`.
fn check_batch_shapes<K: ForwardKernel + ?Sized>(
    kernel: &K,
    (b, l, lv): (usize, usize, usize),
    x0: ArrayView2<'_, u32>,
    x_t: ArrayView2<'_, u32>,
    steps: ArrayView1<'_, usize>,
) -> Result<()> {
    let v = kernel.vocab_size();
    if lv != v {
        return Err(Error::shape(
            "logits",
            format!("[B, L, {v}] (V = the kernel's vocabulary)"),
            format!("[{b}, {l}, {lv}]"),
        ));
    }
    if b == 0 || l == 0 {
        return Err(Error::invalid(
            "logits",
            format!("empty batch: B = {b} sequences of L = {l} positions"),
        ));
    }
    for (arg, a) in [("x0", x0), ("x_t", x_t)] {
        if a.dim() != (b, l) {
            return Err(Error::shape(
                arg,
                format!("[{b}, {l}] like logits' first two axes"),
                format!("{:?}", a.dim()),
            ));
        }
    }
    validate::len("steps", steps.len(), b)?;
    let big_t = kernel.num_steps();
    if let Some((i, &t)) = steps.iter().enumerate().find(|&(_, &t)| t < 1 || t > big_t) {
        return Err(Error::invalid(
            "steps",
            format!("steps[{i}] = {t} is outside 1..={big_t}"),
        ));
    }
    Ok(())
}

/// Add the batch position to a per-position numerical error.
fn at_position(e: Error, b: usize, l: usize) -> Error {
    match e {
        Error::ZeroProbability { what } => Error::ZeroProbability {
            what: format!("{what} (sequence {b}, position {l})"),
        },
        Error::Numerical { what, reason } => Error::Numerical {
            what,
            reason: format!("{reason} (sequence {b}, position {l})"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_softmax() {
        let l = [1.0f32, -2.0, 0.5];
        let mut g = [0.0f32; 3];
        let ce = x0_cross_entropy(&l, 2, Some(&mut g)).unwrap();
        let z: f64 = l.iter().map(|&x| (x as f64).exp()).sum();
        assert!((ce - (z.ln() - 0.5)).abs() < 1e-12);
        assert!(g.iter().map(|&x| x as f64).sum::<f64>().abs() < 1e-6);
    }
}
