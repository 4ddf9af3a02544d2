//! Padé-13 scaling-and-squaring matrix exponential (in progress).
