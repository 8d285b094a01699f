//! Agents, each readable top to bottom in one file: its hyper-parameters in one config struct, the agent, its
//! update, and its training loop (collect → update → log → checkpoint) over the driver's session
//! ([`crate::train`]), which owns logging, checkpoints and resuming.

pub mod a2c;
pub mod a3c;
pub mod actor_critic;
mod domain;
pub mod dqn;
pub mod ppo;
pub mod rainbow;
