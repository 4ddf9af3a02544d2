//! Counter-based random numbers and categorical sampling (DESIGN §2 `rng`, §3.6–3.7).
//!
//! * [`philox`]: Philox-4x32-10 keyed by `(seed, stream)` and addressed by
//!   `(purpose, step, position, index)`: the same numbers on any thread count, batch
//!   composition or device.
//! * [`categorical`]: draws from logits and from unnormalised masses in f64.

pub mod categorical;
pub mod philox;

pub use categorical::{
    Draw, sample_logits, sample_logits_inverse_cdf, sample_masses, sample_masses_race,
};
pub use philox::{
    CounterRng, PHILOX_LANES, Purpose, RngKey, first_uniforms, philox4x32_10, philox4x32_10_lanes,
    u64_at, u64_to_open_unit_f64, u64_to_unit_f64,
};
