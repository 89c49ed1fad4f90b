//! Expression builders, so Rust users can write `nps(col("score"))` in DataFrame code.

pub use crate::customer_base::expr::*;
pub use crate::funnel::expr::*;
pub use crate::rates::expr::*;
pub use crate::service::expr::*;
pub use crate::survey::expr::*;
pub use crate::web::expr::*;
