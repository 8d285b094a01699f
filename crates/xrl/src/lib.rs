//! The xrl library: agents ([`agents`]), replay, the optimiser, run directories, imports, rollouts and benchmarks
//! over [`xrl_env`] and the networks of [`xrl_nn`] (re-exported as [`nn`]). Explanations are in `xrl-explain`.

pub mod agents;
pub mod bench;
pub mod distributional;
pub mod import;
pub mod new_run;
pub mod optim;
pub mod per;
pub mod pixel_replay;
pub mod replay;
pub mod rollout;
pub mod run;
pub mod train;
pub mod trajectory;

pub use burn;
pub use xrl_env as env;
pub use xrl_nn as nn;
pub use xrl_nn::fast::{conv, linear};
pub use xrl_nn::relu;
pub use xrl_render as render;
