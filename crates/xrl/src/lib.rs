//! The xrl library. Today: policies, rollouts and environment benchmarks over [`xrl_env`]. Networks, agents,
//! explanation methods and run directories join as their issues land (see `shared/DESIGN.md`).

pub mod bench;
pub mod rollout;

pub use xrl_env as env;
pub use xrl_render as render;
