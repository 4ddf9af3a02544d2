//! Reverse processes: ancestral and routed samplers (DESIGN §2 `sample`).

pub mod ctmc;
pub mod d3pm;
pub mod rdm;
