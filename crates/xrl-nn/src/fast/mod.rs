//! xrl's own products for burn's Flex CPU backend: a convolution computed a few samples at a time in per-thread
//! buffers ([`conv`]) and the fully connected products of big weights ([`linear`]). They are burn backend
//! extensions, which burn implements only for the backends they list; the networks call them only on a Flex device
//! ([`on_flex`]) and take burn's generic operations everywhere else (so every network also runs on a GPU).

pub mod conv;
pub(crate) mod flex;
pub mod linear;

use burn::tensor::Device;

/// Whether tensors on `device` live on burn's Flex backend (with or without autodiff), where the fast path runs.
pub fn on_flex(device: &Device) -> bool {
    use burn::backend::DispatchDevice;
    fn flex(d: &DispatchDevice) -> bool {
        match d {
            DispatchDevice::Flex(_) => true,
            DispatchDevice::Autodiff(inner) => flex(inner),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
    flex(device.as_dispatch())
}
