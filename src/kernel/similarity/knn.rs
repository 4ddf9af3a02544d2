//! Symmetrised k-nearest-neighbour Gaussian affinities over token embeddings (the weight
//! matrix behind [`super::Similarity::from_embeddings_knn`]). Part of [`super`]; re-exported
//! there.

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::validate;

/// Symmetrised `k`-nearest-neighbour affinity matrix of embeddings `emb` (`[V, dim]`):
///
/// ```text
/// W_ij = exp(−‖e_i − e_j‖² / h²)   if j ∈ N_k(i) or i ∈ N_k(j)      (i ≠ j)
/// W_ii = 1                                                          (self loop)
/// W_ij = 0                         otherwise,
/// ```
///
/// where `N_k(i)` are the `k` tokens `j ≠ i` nearest to `i` in Euclidean distance (ties
/// broken by the smaller index) and `h = bandwidth`. Every row has at least `k` off-diagonal
/// neighbours (the graph is the union of the directed kNN graph and its transpose). The
/// positive diagonal guarantees that the Sinkhorn scaling exists; an affinity that underflows
/// `exp` leaves its edge with weight 0.
///
/// Errors: `emb` with fewer than 2 rows or no columns or non-finite entries; `k = 0` or
/// `k ≥ V`; `bandwidth` not finite and positive.
pub fn knn_affinity(emb: ArrayView2<'_, f64>, k: usize, bandwidth: f64) -> Result<Array2<f64>> {
    let (v, dim) = emb.dim();
    validate::vocab("emb", v)?;
    if dim == 0 {
        return Err(Error::shape(
            "emb",
            "[V, dim] with dim ≥ 1",
            format!("[{v}, 0]"),
        ));
    }
    validate::all_finite("emb", emb.iter())?;
    if k == 0 || k >= v {
        return Err(Error::invalid(
            "k",
            format!("number of neighbours {k} must be in 1..{v} (V = {v})"),
        ));
    }
    if !(bandwidth.is_finite() && bandwidth > 0.0) {
        return Err(Error::invalid(
            "bandwidth",
            format!("{bandwidth} must be finite and positive"),
        ));
    }
    let mut dist2 = Array2::<f64>::zeros((v, v));
    for i in 0..v {
        for j in (i + 1)..v {
            let dd: f64 = emb
                .row(i)
                .iter()
                .zip(emb.row(j))
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            dist2[[i, j]] = dd;
            dist2[[j, i]] = dd;
        }
    }
    let h2 = bandwidth * bandwidth;
    let mut w = Array2::<f64>::zeros((v, v));
    let mut order: Vec<usize> = Vec::with_capacity(v - 1);
    for i in 0..v {
        w[[i, i]] = 1.0;
        order.clear();
        order.extend((0..v).filter(|&j| j != i));
        order.sort_by(|&a, &b| dist2[[i, a]].total_cmp(&dist2[[i, b]]).then(a.cmp(&b)));
        for &j in &order[..k] {
            let a = (-dist2[[i, j]] / h2).exp();
            w[[i, j]] = a;
            w[[j, i]] = a;
        }
    }
    Ok(w)
}
