//! Reverse processes: ancestral and routed samplers (DESIGN §2 `sample`), and the inference
//! toolkit of diffusion language models: [`driver`], [`transform`], [`select`], [`remask`],
//! [`presets`] (`docs/inference.md`).

pub mod d3pm;
pub mod driver;
pub mod presets;
pub mod rdm;
pub mod remask;
pub mod select;
pub mod transform;
