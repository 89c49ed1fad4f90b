//! Expression builders, so Rust users can write `nps(col("score"))` in DataFrame code.

pub use crate::survey::expr::*;
