//! Numerically careful helpers over logits (in progress).
