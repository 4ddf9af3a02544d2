//! Categorical sampling from logits and masses (filled in by the rng work).
