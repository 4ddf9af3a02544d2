//! Helpers shared by the cache tests (`cache_*.rs`).

use discrete_diffusion::Error;
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::schedule::Linear;
use ndarray::{Array1, Array2, Array3};

/// The linear-schedule mixture process over `v` states whose prior is the point mass on
/// `mask` (absorbing) when `masking`, else uniform.
pub fn process(v: usize, mask: u32, masking: bool) -> MixtureProcess {
    let pi = if masking {
        let mut pi = vec![0.0; v];
        pi[mask as usize] = 1.0;
        pi
    } else {
        vec![1.0 / v as f64; v]
    };
    MixtureProcess::from_schedule(pi, Linear::new()).unwrap()
}

/// Every malformed call of `model` around the valid batch `tokens` (`[1, L]`, at `t = 0.5`)
/// is an error: a `times` of another length, a time outside `[0, 1]` or NaN, an output of
/// another vocabulary size ([`Error::Shape`]), a token `≥ V` ([`Error::TokenOutOfRange`]),
/// an empty batch.
pub fn assert_rejects_malformed_calls(model: &dyn Denoiser, tokens: &Array2<u32>) {
    let (b, l) = tokens.dim();
    let v = model.vocab_size();
    let t = Array1::from_elem(b, 0.5);
    let mut out = Array3::<f32>::zeros((b, l, v));
    for bad_t in [
        Array1::from_elem(b + 1, 0.5),
        Array1::from_elem(b, 1.5),
        Array1::from_elem(b, -0.5),
        Array1::from_elem(b, f64::NAN),
    ] {
        let r = model.logits(tokens.view(), bad_t.view(), out.view_mut());
        assert!(r.is_err(), "times {bad_t}");
    }
    for vv in [v - 1, v + 1] {
        let mut wrong = Array3::<f32>::zeros((b, l, vv));
        assert!(matches!(
            model.logits(tokens.view(), t.view(), wrong.view_mut()),
            Err(Error::Shape { .. })
        ));
    }
    let mut bad = tokens.clone();
    bad[[0, l - 1]] = v as u32 + 5;
    assert!(matches!(
        model.logits(bad.view(), t.view(), out.view_mut()),
        Err(Error::TokenOutOfRange { .. })
    ));
    let empty = Array2::<u32>::zeros((0, l));
    let mut oe = Array3::<f32>::zeros((0, l, v));
    let r = model.logits(empty.view(), Array1::<f64>::zeros(0).view(), oe.view_mut());
    assert!(r.is_err());
}
