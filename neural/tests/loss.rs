//! The candle training loss equals the crate's `masked_diffusion_loss_batch` on the same
//! logits, and its gradient matches the crate's analytic gradient.

use candle_core::{Device, Tensor, Var};
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::loss::masked::masked_diffusion_loss_batch;
use discrete_diffusion::loss::weight::ElboWeight;
use discrete_diffusion::schedule::{Antithetic, Linear, MdlmCosine, Schedule};
use discrete_diffusion::train::corrupt::corrupt_batch;
use discrete_diffusion_neural::loss::{loss_coefficients, masked_nelbo_loss};
use discrete_diffusion_neural::model::{TransformerConfig, TransformerDenoiser};
use ndarray::{Array2, Array3};

fn batch(
    b: usize,
    l: usize,
    v: usize,
    mask: u32,
    schedule: impl Schedule + 'static,
) -> (Array2<u32>, Array2<u32>, Vec<f64>) {
    let x0 = Array2::from_shape_fn((b, l), |(i, j)| ((3 * i + 7 * j + i * j) % (v - 1)) as u32);
    let mut pi = vec![0.0; v];
    pi[mask as usize] = 1.0;
    let process = MixtureProcess::from_schedule(pi, schedule).unwrap();
    let ids: Vec<u64> = (0..b as u64).collect();
    let c = corrupt_batch(
        &Antithetic::new(1e-3).unwrap(),
        &process,
        x0.view(),
        5,
        9,
        &ids,
        3,
    )
    .unwrap();
    (x0, c.xt, c.times)
}

fn check(schedule: impl Schedule + Clone + 'static) {
    let (b, l, v, mask) = (6, 10, 7, 6u32);
    let (x0, xt, times) = batch(b, l, v, mask, schedule.clone());
    assert!(xt.iter().any(|&x| x == mask));
    let cfg = TransformerConfig {
        vocab: v,
        mask_token: mask,
        seq_len: l,
        d_model: 16,
        n_layers: 1,
        n_heads: 2,
        d_ff: 32,
    };
    let model = TransformerDenoiser::new(cfg, 1).unwrap();
    let t = Tensor::from_vec(
        xt.iter().copied().collect::<Vec<u32>>(),
        (b, l),
        &Device::Cpu,
    )
    .unwrap();
    // Logits from the network, scaled up so the test is not near-uniform.
    let logits = (model.forward(&t).unwrap() * 40.0).unwrap();
    let flat: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    let mut arr = Array3::from_shape_vec((b, l, v), flat).unwrap();
    // The crate excludes the mask column itself; give it an ordinary (finite) value there.
    for x in arr.slice_mut(ndarray::s![.., .., mask as usize]).iter_mut() {
        *x = 3.0;
    }
    let mut grad = Array3::<f32>::zeros((b, l, v));
    let reference = masked_diffusion_loss_batch(
        arr.view(),
        x0.view(),
        xt.view(),
        ndarray::ArrayView1::from(&times),
        mask,
        &schedule,
        ElboWeight::Elbo,
        Some(grad.view_mut()),
    )
    .unwrap();
    let expected: f64 = reference.iter().map(|r| r.value).sum::<f64>() / (b * l) as f64;
    // Candle loss on the same logits (mask column at −1e30, as the model's forward gives it).
    let coef = loss_coefficients(
        x0.view(),
        xt.view(),
        &times,
        mask,
        &schedule,
        ElboWeight::Elbo,
    )
    .unwrap();
    let mut arr_c = arr.clone();
    for x in arr_c
        .slice_mut(ndarray::s![.., .., mask as usize])
        .iter_mut()
    {
        *x = -1e30;
    }
    let var = Var::from_tensor(
        &Tensor::from_vec(
            arr_c.iter().copied().collect::<Vec<f32>>(),
            (b, l, v),
            &Device::Cpu,
        )
        .unwrap(),
    )
    .unwrap();
    let loss = masked_nelbo_loss(var.as_tensor(), x0.view(), &coef).unwrap();
    let got = loss.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (got - expected).abs() <= 1e-5 * expected.abs().max(1.0),
        "candle {got} vs crate {expected}"
    );
    // Gradients: the crate's per-sequence gradient scaled by 1/(B·L).
    let g = loss.backward().unwrap();
    let gv: Vec<f32> = g
        .get(var.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let scale = 1.0 / (b * l) as f32;
    for ((i, &a), &r) in gv.iter().enumerate().zip(grad.iter()) {
        let r = if i % v == mask as usize {
            0.0
        } else {
            r * scale
        };
        assert!((a - r).abs() < 1e-6, "grad[{i}]: candle {a} vs crate {r}");
    }
}

#[test]
fn candle_loss_equals_crate_loss_linear() {
    check(Linear::new());
}

#[test]
fn candle_loss_equals_crate_loss_cosine() {
    check(MdlmCosine::new(1e-3).unwrap());
}
