//! Agents, each readable top to bottom in one file with its hyper-parameters in one config struct.

pub mod a2c;
pub mod a3c;
pub mod actor_critic;
pub mod dqn;
