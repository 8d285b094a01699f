//! The xrl library: explainable networks ([`nn`]), agents ([`agents`]), replay, rollouts and benchmarks over
//! [`xrl_env`]. Explanation methods join with their issue (see `shared/DESIGN.md`).

pub mod agents;
pub mod bench;
pub mod conv;
pub mod explain;
mod flex;
pub mod import;
pub mod linear;
pub mod nn;
pub mod optim;
pub mod relu;
pub mod replay;
pub mod rollout;
pub mod run;
pub mod train;

pub use burn;
pub use xrl_env as env;
pub use xrl_render as render;
