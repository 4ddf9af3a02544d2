//! The multi-threaded CPU backend (in progress).
