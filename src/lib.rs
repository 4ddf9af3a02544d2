//! # discrete-diffusion
//!
//! A reference implementation of discrete diffusion mathematics — D3PM, SEDD, RADD,
//! MDLM/MD4, τLDR, discrete flow matching and the samplers of diffusion language models —
//! with exact oracles that prove it right.
//!
//! Conventions, fixed once for the whole crate (see `docs/conventions.md`):
//!
//! * time `t ∈ [0, 1]`, `t = 0` clean data, `t = 1` the prior; discrete steps `1..=T`;
//! * transition matrices are row-stochastic, `Q[from, to]`; CTMC generators have rows
//!   summing to 0;
//! * the mask token is any index (never assumed last);
//! * tokens are `u32`, model logits `f32`, and every probability that is sampled from or
//!   reduced is accumulated in `f64`.
//!
//! Layers (data flows downward): [`schedule`] → [`kernel`] → [`loss`] / [`sample`] over a
//! [`model::Denoiser`], with [`rng`] giving counter-based random numbers to all of them and
//! [`linalg`] the dense f64 numerics (faer).

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod backend;
pub mod data;
pub mod error;
pub mod kernel;
pub mod linalg;
pub mod loss;
pub mod math;
pub mod model;
pub mod param;
pub mod rng;
pub mod sample;
pub mod schedule;
pub mod train;
pub(crate) mod validate;

pub use error::{Error, Result};

/// The README's code blocks, compiled and run as doctests so they never go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
