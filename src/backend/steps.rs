//! Fused sampler steps over a backend (in progress).
