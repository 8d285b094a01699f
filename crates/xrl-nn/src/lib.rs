//! Networks that explain themselves: named heads, layer probes and ReLU backward rules switched per call, on any
//! burn backend. [`fast`] holds xrl's own CPU products for burn's Flex backend; every other backend takes burn's
//! generic operations. [`device`] turns a command line's `--device` into a burn device.

mod core;
pub mod device;
pub mod fast;
mod head;
pub mod ife;
mod net;
pub mod noisy;
pub mod qbn;
pub mod quantise;
pub mod relu;
mod torso;

pub use core::CoreModule;
pub use head::{HeadModule, dueling};
pub use net::*;
pub use torso::{TorsoModule, conv_gemm};
