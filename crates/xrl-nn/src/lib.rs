//! Networks that explain themselves: named heads, layer probes and ReLU backward rules switched per call, on any
//! burn backend. [`fast`] holds xrl's own CPU products for burn's Flex backend; every other backend takes burn's
//! generic operations. [`device`] turns a command line's `--device` into a burn device.

pub mod device;
pub mod fast;
mod net;
pub mod relu;

pub use net::*;
