//! Test models shared by the inference-toolkit tests (`infer_*.rs`).

use discrete_diffusion::Result;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::rng::{Purpose, RngKey, u64_at};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut3};

/// Pseudo-random logits that depend on the tokens, the position and a seed (all NaN when
/// `nan`).
pub struct Hashy {
    pub v: usize,
    pub seed: u64,
    pub nan: bool,
}

impl Denoiser for Hashy {
    fn vocab_size(&self) -> usize {
        self.v
    }
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        _: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        for (b, row) in tokens.outer_iter().enumerate() {
            let h = row
                .iter()
                .fold(self.seed, |a, &t| a.wrapping_mul(31).wrapping_add(t as u64));
            for i in 0..row.len() {
                for v in 0..self.v {
                    let r = u64_at(RngKey::new(h), Purpose::USER, i as u32, v as u32, 0);
                    out[[b, i, v]] = if self.nan {
                        f32::NAN
                    } else {
                        (r % 1000) as f32 / 200.0 - 2.5
                    };
                }
            }
        }
        Ok(())
    }
}
