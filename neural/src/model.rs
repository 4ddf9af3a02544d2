//! A small bidirectional transformer denoiser (candle, CPU).
//!
//! ```text
//! h⁰_i  = E[x_t^i] + P[i]                                   (token and learned position embeddings)
//! hˡ    = hˡ⁻¹ + MHA(LN(hˡ⁻¹));   hˡ ← hˡ + W₂ GELU(W₁ LN(hˡ))  (pre-LN blocks, no causal mask)
//! z_i   = W_out LN(h^n)_i  ∈ ℝ^V
//! ```
//!
//! No time input: for absorbing diffusion the clean-data posterior `p(x_0 | x_t)` does not
//! depend on `t` once `x_t` is known (RADD, Ou et al. 2024, Thm. 1), so MDLM-style models
//! may drop the time conditioning. Through the [`Denoiser`] trait the logits are given the
//! SUBS parameterisation of MDLM (Sahoo et al. 2024, §3.2): the mask logit is `−∞` and an
//! unmasked position carries its token over (`0` there, `−∞` elsewhere).
//!
//! Parameters are initialised from the crate's counter-based RNG (`N(0, 0.02²)` weights,
//! zero biases, unit layer-norm gains), so a seed fixes the initial model exactly.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, VarMap};
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::rng::{Purpose, RngKey, u64_at, u64_to_unit_f64};
use discrete_diffusion::{Error, Result};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut3};

use crate::candle_err;

/// Architecture of a [`TransformerDenoiser`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformerConfig {
    /// Model vocabulary `V` (data tokens and the mask).
    pub vocab: usize,
    /// The mask token (`< V`).
    pub mask_token: u32,
    /// Sequence length `L` (the position table's size).
    pub seq_len: usize,
    /// Width `d`.
    pub d_model: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Attention heads (`d` must be a multiple).
    pub n_heads: usize,
    /// Hidden width of the MLP.
    pub d_ff: usize,
}

impl TransformerConfig {
    /// Errors: `V < 2`, mask `≥ V`, a zero size, or `d` not a multiple of the heads.
    pub fn validate(&self) -> Result<()> {
        if self.vocab < 2 {
            return Err(Error::invalid("vocab", format!("{} < 2", self.vocab)));
        }
        if self.mask_token as usize >= self.vocab {
            return Err(Error::invalid(
                "mask_token",
                format!("{} ≥ V = {}", self.mask_token, self.vocab),
            ));
        }
        for (arg, v) in [
            ("seq_len", self.seq_len),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
        ] {
            if v == 0 {
                return Err(Error::invalid(arg, "must be ≥ 1"));
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(Error::invalid(
                "n_heads",
                format!(
                    "d_model = {} is not a multiple of {}",
                    self.d_model, self.n_heads
                ),
            ));
        }
        Ok(())
    }
}

/// Layer normalisation by differentiable tensor ops (candle-nn's fused `LayerNorm` kernel
/// has no backward pass, which would silently stop the gradient).
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn new(d: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(LayerNorm {
            weight: vb.get(d, "weight")?,
            bias: vb.get(d, "bias")?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, 1e-5)
    }
}

struct Block {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln2: LayerNorm,
    ff1: Linear,
    ff2: Linear,
}

/// The transformer denoiser (module docs). Holds its parameters in a [`VarMap`] for the
/// optimiser.
pub struct TransformerDenoiser {
    cfg: TransformerConfig,
    varmap: VarMap,
    tok: Embedding,
    pos: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
    /// `[V]`: 0, and `−1e30` at the mask (SUBS: the mask is never predicted).
    mask_bias: Tensor,
}

/// Standard normal draws from the crate's counter RNG (Box–Muller), stream `stream`.
fn normals(seed: u64, stream: u64, n: usize) -> Vec<f32> {
    let key = RngKey::for_stream(seed, stream);
    (0..n)
        .map(|i| {
            let u1 = u64_to_unit_f64(u64_at(key, Purpose::USER, 0, i as u32, 0)).max(1e-300);
            let u2 = u64_to_unit_f64(u64_at(key, Purpose::USER, 0, i as u32, 1));
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

impl TransformerDenoiser {
    /// A freshly initialised model (module docs) on the CPU.
    ///
    /// Errors: an invalid config; candle errors.
    pub fn new(cfg: TransformerConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        Self::build(cfg, seed).map_err(candle_err)
    }

    fn build(cfg: TransformerConfig, seed: u64) -> candle_core::Result<Self> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let (d, v) = (cfg.d_model, cfg.vocab);
        let ln = |vb: VarBuilder| LayerNorm::new(d, vb);
        let tok = candle_nn::embedding(v, d, vb.pp("tok"))?;
        let pos = vb.get((cfg.seq_len, d), "pos")?;
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let b = vb.pp(format!("block{l}"));
            blocks.push(Block {
                ln1: ln(b.pp("ln1"))?,
                q: candle_nn::linear(d, d, b.pp("q"))?,
                k: candle_nn::linear(d, d, b.pp("k"))?,
                v: candle_nn::linear(d, d, b.pp("v"))?,
                o: candle_nn::linear(d, d, b.pp("o"))?,
                ln2: ln(b.pp("ln2"))?,
                ff1: candle_nn::linear(d, cfg.d_ff, b.pp("ff1"))?,
                ff2: candle_nn::linear(cfg.d_ff, d, b.pp("ff2"))?,
            });
        }
        let ln_f = ln(vb.pp("ln_f"))?;
        let head = candle_nn::linear(d, v, vb.pp("head"))?;
        // Deterministic initialisation from the counter RNG, in name order.
        {
            let data = varmap
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("poisoned parameter map".to_string()))?;
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            for (i, name) in names.into_iter().enumerate() {
                let var = &data[name];
                let shape = var.shape().clone();
                let n = shape.elem_count();
                let is_ln = name.contains("ln");
                let values: Vec<f32> = if name.ends_with("bias") {
                    vec![0.0; n]
                } else if is_ln {
                    vec![1.0; n]
                } else {
                    normals(seed, i as u64, n)
                        .iter()
                        .map(|z| 0.02 * z)
                        .collect()
                };
                var.set(&Tensor::from_vec(values, shape, &dev)?)?;
            }
        }
        let mut mb = vec![0f32; v];
        mb[cfg.mask_token as usize] = -1e30;
        let mask_bias = Tensor::from_vec(mb, v, &dev)?;
        Ok(TransformerDenoiser {
            cfg,
            varmap,
            tok,
            pos,
            blocks,
            ln_f,
            head,
            mask_bias,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// The parameters (for an optimiser).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Raw logits `[B, L, V]` (f32) of `tokens` (`[B, L]`, u32) with the SUBS mask bias
    /// added (`−1e30` at the mask column; the other columns are the network's outputs at
    /// every position, masked or not). Differentiable with respect to the parameters.
    ///
    /// Errors: `tokens` not `[B, L]` with this model's `L`; candle errors.
    pub fn forward(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        let (b, l) = tokens.dims2()?;
        if l != self.cfg.seq_len {
            candle_core::bail!("tokens have length {l}, the model {}", self.cfg.seq_len);
        }
        let (d, h) = (self.cfg.d_model, self.cfg.n_heads);
        let dh = d / h;
        let scale = 1.0 / (dh as f64).sqrt();
        let mut x = self.tok.forward(tokens)?.broadcast_add(&self.pos)?;
        let heads = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, l, h, dh))?.transpose(1, 2)?.contiguous()
        };
        for blk in &self.blocks {
            let y = blk.ln1.forward(&x)?;
            let q = heads(blk.q.forward(&y)?)?;
            let k = heads(blk.k.forward(&y)?)?;
            let v = heads(blk.v.forward(&y)?)?;
            let att = (q.matmul(&k.t()?.contiguous()?)? * scale)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, l, d))?;
            x = (x + blk.o.forward(&y)?)?;
            let y = blk.ln2.forward(&x)?;
            let y = blk.ff2.forward(&blk.ff1.forward(&y)?.gelu()?)?;
            x = (x + y)?;
        }
        let z = self.head.forward(&self.ln_f.forward(&x)?)?;
        z.broadcast_add(&self.mask_bias)
    }

    /// Log-probabilities `log p_θ(x_0^i = v | x_t)` `[B, L, V]` (log-softmax of
    /// [`forward`](Self::forward); `≈ −1e30` at the mask).
    pub fn log_probs(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::log_softmax(&self.forward(tokens)?, D::Minus1)
    }
}

/// Rows evaluated per candle call in [`Denoiser::logits`].
const EVAL_CHUNK: usize = 256;

impl Denoiser for TransformerDenoiser {
    fn vocab_size(&self) -> usize {
        self.cfg.vocab
    }

    /// SUBS logits (module docs): masked positions get the network's log-probabilities with
    /// the mask at `−∞`; unmasked positions `0` at their token and `−∞` elsewhere. `times`
    /// is checked (`[B]`, each in `[0, 1]`) and otherwise unused (a time-free model).
    ///
    /// Errors: `tokens` not `[B, L]` with the model's `L`, a token `≥ V`, `times` of another
    /// length or outside `[0, 1]`, `out` not `[B, L, V]`; candle errors.
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let (b, l) = tokens.dim();
        let v = self.cfg.vocab;
        if l != self.cfg.seq_len {
            return Err(Error::shape(
                "tokens",
                format!("[B, {}]", self.cfg.seq_len),
                format!("[{b}, {l}]"),
            ));
        }
        if out.dim() != (b, l, v) {
            return Err(Error::shape(
                "out",
                format!("[{b}, {l}, {v}]"),
                format!("{:?}", out.shape()),
            ));
        }
        if times.len() != b {
            return Err(Error::shape(
                "times",
                format!("[{b}]"),
                format!("[{}]", times.len()),
            ));
        }
        for (i, &t) in times.iter().enumerate() {
            if !(0.0..=1.0).contains(&t) {
                return Err(Error::invalid(
                    "times",
                    format!("times[{i}] = {t} ∉ [0, 1]"),
                ));
            }
        }
        if let Some((i, &x)) = tokens.iter().enumerate().find(|(_, x)| **x as usize >= v) {
            return Err(Error::TokenOutOfRange {
                arg: "tokens",
                index: i,
                token: x as u64,
                vocab: v,
            });
        }
        let mask = self.cfg.mask_token;
        let mut start = 0;
        while start < b {
            let n = EVAL_CHUNK.min(b - start);
            let ids: Vec<u32> = tokens
                .slice(ndarray::s![start..start + n, ..])
                .iter()
                .copied()
                .collect();
            let t = Tensor::from_vec(ids, (n, l), &Device::Cpu).map_err(candle_err)?;
            let lp = self
                .log_probs(&t)
                .and_then(|x| x.detach().flatten_all()?.to_vec1::<f32>())
                .map_err(candle_err)?;
            for bi in 0..n {
                for i in 0..l {
                    let x = tokens[[start + bi, i]];
                    let row = &lp[(bi * l + i) * v..(bi * l + i + 1) * v];
                    for (u, o) in row.iter().enumerate() {
                        out[[start + bi, i, u]] = if x == mask {
                            if u == mask as usize {
                                f32::NEG_INFINITY
                            } else {
                                *o
                            }
                        } else if u == x as usize {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        };
                    }
                }
            }
            start += n;
        }
        Ok(())
    }
}
