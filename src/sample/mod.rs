//! Reverse processes: ancestral and routed samplers (DESIGN §2 `sample`).

pub mod cache;
pub mod d3pm;
pub mod flow;
pub mod guidance;
pub mod rdm;
