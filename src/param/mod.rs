//! Parameterisations: what a network predicts and how the predictions convert
//! (DESIGN §2 `param`): x0-probabilities ↔ concrete scores (SEDD, RADD), flow-matching
//! posteriors → velocities, and reverse CTMC rates built from any of them.

pub mod radd;
pub mod reverse;
pub mod score;
pub mod velocity;
