//! Training objectives as values and as gradients with respect to logits (DESIGN §2 `loss`).

pub mod ctmc;
pub mod d3pm;
pub mod flow;
pub mod masked;
pub mod rdm;
pub mod weight;
