//! The BLOSUM62 amino-acid substitution matrix (Henikoff & Henikoff 1992) and the
//! EvoDiff-style similarity kernel built from it.
//!
//! BLOSUM62 scores `B(a, b)` are log-odds in half-bit units,
//! `B(a, b) = round(2 · log2(p_ab / (q_a q_b)))`, estimated from ungapped blocks of aligned
//! protein segments clustered at 62 % identity (Henikoff, S. & Henikoff, J. G. (1992),
//! "Amino acid substitution matrices from protein blocks", PNAS 89(22):10915–10919).
//!
//! [`BLOSUM62`] is the standard NCBI/`matblas` table in the 24-letter order
//! [`BLOSUM62_ALPHABET`] = `ARNDCQEGHILKMFPSTWYVBZX*` (the 20 standard amino acids, the
//! ambiguity codes `B` = D/N, `Z` = E/Q, `X` = any, and the stop `*`), identical to the
//! `BLOSUM62` file distributed by NCBI and by Biopython
//! (`Bio/Align/substitution_matrices/data/BLOSUM62`, `*` column with the minimum score −4).
//!
//! # EvoDiff D3PM-BLOSUM and how [`Similarity::blosum62`] relates to it
//!
//! EvoDiff (Alamdari et al. 2023, `microsoft/evodiff`, `evodiff/utils.py`,
//! `Tokenizer.q_blosum` / `q_blosum_schedule`) builds its D3PM-BLOSUM forward process as:
//!
//! 1. read `data/blosum62-special-MSA.mat`: the 23×23 NCBI block (`ARNDCQEGHILKMFPSTWYVBZX`)
//!    extended with `J`, `O`, `U` and the gap `-` (score 4 with themselves, −1 elsewhere);
//! 2. `q = exp(B)` normalised so that each **column** sums to 1 (numpy `softmax(axis=0)`,
//!    temperature 1);
//! 3. alternate row and column normalisation (Sinkhorn–Knopp) until the smallest column sum
//!    is `np.isclose` to 1 (relative tolerance 1e-5);
//! 4. reorder to the MSA tokenizer alphabet and, for single sequences, drop the gap row and
//!    column (26 states: 20 standard amino acids plus `BZXJOU`);
//! 5. `Q_t = β_t q + diag(1 − β_t · colsum(q))` with the `exp` schedule over `T = 500`
//!    steps, `β_t = b_t / max b + 1/T`, `b_t = exp(linspace(0, 6, T)) (0.999 − 1e-5) + 1e-5`;
//!    the cumulative `Q̄_t` is the explicit product of the `Q_t`, applied as `x_0 Q̄_t`.
//!
//! For a symmetric `W = exp(B)` with total support the doubly-stochastic scaling
//! `D₁ W D₂` is unique, and its transpose `D₂ W D₁` is another one, so the limit of steps 2–3
//! is the *symmetric* scaling `D W D` that [`super::similarity::sinkhorn_symmetric`]
//! computes. [`Similarity::blosum62`] with `temperature = 1` is therefore EvoDiff's
//! construction carried to convergence, with these deliberate differences:
//!
//! * **States**: the 20 standard amino acids in NCBI order ([`STANDARD_AMINO_ACIDS`]), not
//!   EvoDiff's 26 (the made-up `J`, `O`, `U` rows and the ambiguity codes are not
//!   substitution data). [`Similarity::blosum62_for_alphabet`] takes any subset and order of
//!   the 24 NCBI letters, e.g. a tokenizer's.
//! * **Convergence**: Sinkhorn is run to `max_i |Σ_j S_ij − 1| ≤ 1e-12`
//!   ([`super::similarity::SINKHORN_TOL`]) instead of `isclose` on one column, and no row or
//!   column is dropped afterwards, so `S` is exactly (to round-off) symmetric and doubly
//!   stochastic. This is what makes the eigen route `Q̄_t = U diag(Π(1 − β + βλ)) Uᵀ` valid
//!   and keeps the stationary law uniform.
//! * **Schedule**: the `β_t` are the caller's and must lie in `[0, 1]`; EvoDiff's last
//!   `β_T = 1 + 1/T` slightly exceeds 1 (its `Q_T` stays non-negative only because the
//!   diagonal of `q` is large).
//! * **Temperature** is a parameter: `W = exp(B / τ)`; EvoDiff uses `τ = 1`.

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::kernel::similarity::Similarity;

/// The 24 letters of [`BLOSUM62`], in the standard NCBI order `ARNDCQEGHILKMFPSTWYVBZX*`.
pub const BLOSUM62_ALPHABET: [u8; 24] = *b"ARNDCQEGHILKMFPSTWYVBZX*";

/// The 20 standard amino acids, in the NCBI BLOSUM order (the first 20 of
/// [`BLOSUM62_ALPHABET`]). State `i` of [`Similarity::blosum62`] is `STANDARD_AMINO_ACIDS[i]`.
pub const STANDARD_AMINO_ACIDS: [u8; 20] = *b"ARNDCQEGHILKMFPSTWYV";

/// BLOSUM62 log-odds scores (half-bit units; Henikoff & Henikoff 1992):
/// `BLOSUM62[i][j] = B(BLOSUM62_ALPHABET[i], BLOSUM62_ALPHABET[j])`. Symmetric.
///
/// Transcribed from the NCBI/`matblas` table as distributed by Biopython; the `*` row and
/// column carry the minimum score −4 (and `*`/`*` = 1).
#[rustfmt::skip]
pub const BLOSUM62: [[i8; 24]; 24] = [
    [ 4, -1, -2, -2,  0, -1, -1,  0, -2, -1, -1, -1, -1, -2, -1,  1,  0, -3, -2,  0, -2, -1,  0, -4], // A
    [-1,  5,  0, -2, -3,  1,  0, -2,  0, -3, -2,  2, -1, -3, -2, -1, -1, -3, -2, -3, -1,  0, -1, -4], // R
    [-2,  0,  6,  1, -3,  0,  0,  0,  1, -3, -3,  0, -2, -3, -2,  1,  0, -4, -2, -3,  3,  0, -1, -4], // N
    [-2, -2,  1,  6, -3,  0,  2, -1, -1, -3, -4, -1, -3, -3, -1,  0, -1, -4, -3, -3,  4,  1, -1, -4], // D
    [ 0, -3, -3, -3,  9, -3, -4, -3, -3, -1, -1, -3, -1, -2, -3, -1, -1, -2, -2, -1, -3, -3, -2, -4], // C
    [-1,  1,  0,  0, -3,  5,  2, -2,  0, -3, -2,  1,  0, -3, -1,  0, -1, -2, -1, -2,  0,  3, -1, -4], // Q
    [-1,  0,  0,  2, -4,  2,  5, -2,  0, -3, -3,  1, -2, -3, -1,  0, -1, -3, -2, -2,  1,  4, -1, -4], // E
    [ 0, -2,  0, -1, -3, -2, -2,  6, -2, -4, -4, -2, -3, -3, -2,  0, -2, -2, -3, -3, -1, -2, -1, -4], // G
    [-2,  0,  1, -1, -3,  0,  0, -2,  8, -3, -3, -1, -2, -1, -2, -1, -2, -2,  2, -3,  0,  0, -1, -4], // H
    [-1, -3, -3, -3, -1, -3, -3, -4, -3,  4,  2, -3,  1,  0, -3, -2, -1, -3, -1,  3, -3, -3, -1, -4], // I
    [-1, -2, -3, -4, -1, -2, -3, -4, -3,  2,  4, -2,  2,  0, -3, -2, -1, -2, -1,  1, -4, -3, -1, -4], // L
    [-1,  2,  0, -1, -3,  1,  1, -2, -1, -3, -2,  5, -1, -3, -1,  0, -1, -3, -2, -2,  0,  1, -1, -4], // K
    [-1, -1, -2, -3, -1,  0, -2, -3, -2,  1,  2, -1,  5,  0, -2, -1, -1, -1, -1,  1, -3, -1, -1, -4], // M
    [-2, -3, -3, -3, -2, -3, -3, -3, -1,  0,  0, -3,  0,  6, -4, -2, -2,  1,  3, -1, -3, -3, -1, -4], // F
    [-1, -2, -2, -1, -3, -1, -1, -2, -2, -3, -3, -1, -2, -4,  7, -1, -1, -4, -3, -2, -2, -1, -2, -4], // P
    [ 1, -1,  1,  0, -1,  0,  0,  0, -1, -2, -2,  0, -1, -2, -1,  4,  1, -3, -2, -2,  0,  0,  0, -4], // S
    [ 0, -1,  0, -1, -1, -1, -1, -2, -2, -1, -1, -1, -1, -2, -1,  1,  5, -2, -2,  0, -1, -1,  0, -4], // T
    [-3, -3, -4, -4, -2, -2, -3, -2, -2, -3, -2, -3, -1,  1, -4, -3, -2, 11,  2, -3, -4, -3, -2, -4], // W
    [-2, -2, -2, -3, -2, -1, -2, -3,  2, -1, -1, -2, -1,  3, -3, -2, -2,  2,  7, -1, -3, -2, -1, -4], // Y
    [ 0, -3, -3, -3, -1, -2, -2, -3, -3,  3,  1, -2,  1, -1, -2, -2,  0, -3, -1,  4, -3, -2, -1, -4], // V
    [-2, -1,  3,  4, -3,  0,  1, -1,  0, -3, -4,  0, -3, -3, -2,  0, -1, -4, -3, -3,  4,  1, -1, -4], // B
    [-1,  0,  0,  1, -3,  3,  4, -2,  0, -3, -3,  1, -1, -3, -1,  0, -1, -3, -2, -2,  1,  4, -1, -4], // Z
    [ 0, -1, -1, -1, -2, -1, -1, -1, -1, -1, -1, -1, -1, -1, -2,  0,  0, -2, -1, -1, -1, -1, -1, -4], // X
    [-4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4,  1], // *
];

/// Index of a letter in [`BLOSUM62_ALPHABET`] (case-insensitive for letters; `*` is the stop).
///
/// Errors if `letter` is not one of `ARNDCQEGHILKMFPSTWYVBZX*` (or their lower case).
pub fn blosum62_index(letter: u8) -> Result<usize> {
    let up = letter.to_ascii_uppercase();
    BLOSUM62_ALPHABET
        .iter()
        .position(|&c| c == up)
        .ok_or_else(|| {
            Error::invalid(
                "letter",
                format!(
                    "{:?} is not a BLOSUM62 letter (ARNDCQEGHILKMFPSTWYVBZX*)",
                    char::from(letter)
                ),
            )
        })
}

/// The BLOSUM62 score `B(a, b)` of two letters (case-insensitive).
///
/// ```
/// use discrete_diffusion::kernel::blosum::blosum62_score;
/// assert_eq!(blosum62_score(b'W', b'W').unwrap(), 11);
/// assert_eq!(blosum62_score(b'a', b's').unwrap(), 1);
/// ```
pub fn blosum62_score(a: u8, b: u8) -> Result<i8> {
    Ok(BLOSUM62[blosum62_index(a)?][blosum62_index(b)?])
}

/// The BLOSUM62 scores restricted to (and reordered by) `alphabet`:
/// `out[i, j] = B(alphabet[i], alphabet[j])`, as f64.
///
/// `alphabet` lists distinct BLOSUM62 letters (case-insensitive), at least 2 of them, in the
/// order of the caller's token ids. Errors on an unknown or repeated letter.
pub fn blosum62_submatrix(alphabet: &[u8]) -> Result<Array2<f64>> {
    if alphabet.len() < 2 {
        return Err(Error::invalid(
            "alphabet",
            format!("needs at least 2 letters, got {}", alphabet.len()),
        ));
    }
    let mut idx = Vec::with_capacity(alphabet.len());
    for (pos, &c) in alphabet.iter().enumerate() {
        let i = blosum62_index(c).map_err(|_| {
            Error::invalid(
                "alphabet",
                format!(
                    "entry {pos} ({:?}) is not a BLOSUM62 letter (ARNDCQEGHILKMFPSTWYVBZX*)",
                    char::from(c)
                ),
            )
        })?;
        if idx.contains(&i) {
            return Err(Error::invalid(
                "alphabet",
                format!("letter {:?} appears twice (entry {pos})", char::from(c)),
            ));
        }
        idx.push(i);
    }
    let n = idx.len();
    Ok(Array2::from_shape_fn((n, n), |(a, b)| {
        f64::from(BLOSUM62[idx[a]][idx[b]])
    }))
}

/// The 20×20 BLOSUM62 block of the standard amino acids, in [`STANDARD_AMINO_ACIDS`] order.
pub fn blosum62_standard() -> Array2<f64> {
    Array2::from_shape_fn((20, 20), |(a, b)| f64::from(BLOSUM62[a][b]))
}

impl Similarity {
    /// EvoDiff-style BLOSUM62 similarity kernel over the 20 standard amino acids
    /// (state `i` = [`STANDARD_AMINO_ACIDS`]`[i]`).
    ///
    /// `S` is the symmetric Sinkhorn scaling of `W_ab = exp(B(a, b) / temperature)` to a
    /// doubly-stochastic matrix, and `Q_t = (1 − β_t) I + β_t S` (see
    /// [`Similarity::from_similarity`]). With `temperature = 1` this is the converged form of
    /// EvoDiff's D3PM-BLOSUM transition matrix (Alamdari et al. 2023); the module
    /// documentation lists precisely how and why it differs.
    ///
    /// The scaling runs on `B / temperature` in the log domain, so any positive temperature
    /// works; as `temperature → 0`, `S → I` (each diagonal score is its row's strict maximum).
    ///
    /// Errors: `temperature` not finite and positive, `betas` empty or outside `[0, 1]`.
    pub fn blosum62(temperature: f64, betas: &[f64]) -> Result<Self> {
        Self::from_similarity(blosum62_standard().view(), temperature, betas)
    }

    /// [`Similarity::blosum62`] over a caller-chosen subset and order of the 24 BLOSUM62
    /// letters: state `i` is `alphabet[i]` (see [`blosum62_submatrix`]).
    pub fn blosum62_for_alphabet(alphabet: &[u8], temperature: f64, betas: &[f64]) -> Result<Self> {
        Self::from_similarity(blosum62_submatrix(alphabet)?.view(), temperature, betas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn table_is_symmetric_with_known_diagonal() {
        for i in 0..24 {
            for j in 0..24 {
                assert_eq!(BLOSUM62[i][j], BLOSUM62[j][i]);
            }
        }
        let diag: Vec<i8> = (0..24).map(|i| BLOSUM62[i][i]).collect();
        assert_eq!(
            diag,
            [
                4, 5, 6, 6, 9, 5, 5, 6, 8, 4, 4, 5, 5, 6, 7, 4, 5, 11, 7, 4, 4, 4, -1, 1
            ]
        );
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(blosum62_score(b'c', b'C').unwrap(), 9);
        assert!(blosum62_index(b'J').is_err());
    }
}
