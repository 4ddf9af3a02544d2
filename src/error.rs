//! The crate's one error type.
//!
//! Every public entry point validates its inputs at the boundary (DESIGN §5) and returns
//! [`Error`] with a message that names the offending argument and its value. No panic is
//! reachable from safe public API with any input.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `discrete-diffusion`.
///
/// Variants carry the argument name (`arg`) so that messages say *which* input was bad.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A scalar or structural argument is outside its domain (e.g. `t = 1.5`, `V = 1`).
    InvalidArgument {
        /// Name of the argument.
        arg: &'static str,
        /// What is wrong with it, including the value.
        reason: String,
    },
    /// Two shapes or lengths that must agree do not.
    Shape {
        /// Name of the argument.
        arg: &'static str,
        /// The expected shape.
        expected: String,
        /// The shape that was passed.
        got: String,
    },
    /// A token id is not a valid state of the vocabulary.
    TokenOutOfRange {
        /// Name of the argument.
        arg: &'static str,
        /// Flat index of the token inside the argument.
        index: usize,
        /// The token id.
        token: u64,
        /// The vocabulary size `V`; valid ids are `0..V`.
        vocab: usize,
    },
    /// A NaN or infinite value where a finite one is required.
    NonFinite {
        /// Name of the argument.
        arg: &'static str,
        /// Flat index of the value inside the argument.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A vector that must be a probability distribution is not one (negative entries, or a
    /// sum away from 1 beyond the tolerance).
    NotADistribution {
        /// Name of the argument.
        arg: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The conditioning event has probability zero, so a conditional law is undefined
    /// (e.g. the posterior `q(x_{t-1} | x_t, x_0)` when `q(x_t | x_0) = 0`).
    ZeroProbability {
        /// Which quantity could not be formed.
        what: String,
    },
    /// A numerical routine failed (e.g. an eigendecomposition did not converge).
    Numerical {
        /// Which routine.
        what: &'static str,
        /// Details.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(arg: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            arg,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(arg: &'static str, expected: impl fmt::Display, got: impl fmt::Display) -> Self {
        Error::Shape {
            arg,
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { arg, reason } => {
                write!(f, "invalid argument `{arg}`: {reason}")
            }
            Error::Shape { arg, expected, got } => {
                write!(
                    f,
                    "shape mismatch in `{arg}`: expected {expected}, got {got}"
                )
            }
            Error::TokenOutOfRange {
                arg,
                index,
                token,
                vocab,
            } => write!(
                f,
                "token out of range in `{arg}` at index {index}: {token} is not in 0..{vocab}"
            ),
            Error::NonFinite { arg, index, value } => {
                write!(f, "non-finite value in `{arg}` at index {index}: {value}")
            }
            Error::NotADistribution { arg, reason } => {
                write!(f, "`{arg}` is not a probability distribution: {reason}")
            }
            Error::ZeroProbability { what } => {
                write!(f, "conditioning event has probability zero: {what}")
            }
            Error::Numerical { what, reason } => write!(f, "numerical failure in {what}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}
