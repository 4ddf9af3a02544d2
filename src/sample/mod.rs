//! Reverse processes: ancestral and routed samplers (DESIGN §2 `sample`), and the inference
//! toolkit of diffusion language models: [`driver`], [`transform`], [`select`], [`remask`],
//! [`presets`] (`docs/inference.md`); [`guidance`] and [`cache`] wrappers
//! (`docs/inference-guidance.md`); discrete flow matching solvers ([`flow`]);
//! continuous-time CTMC samplers ([`ctmc`]: Euler, τ-leaping, Tweedie, first hitting,
//! predictor–corrector).

pub mod cache;
pub mod ctmc;
pub mod d3pm;
pub mod driver;
pub mod flow;
pub mod guidance;
pub mod presets;
pub mod rdm;
pub mod remask;
pub mod select;
pub mod transform;
