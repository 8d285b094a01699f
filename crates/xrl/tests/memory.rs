//! Forward passes that want no gradients must not keep memory: through a network on the autodiff device, burn
//! holds each pass's graph until a backward pass that never comes (about 50 MB per Nature-CNN batch of 64).
//! One test in its own binary, so no other test's allocations share the process.

use xrl::burn::tensor::{Device, Distribution, Tensor};
use xrl::nn::{HeadKind, Net, NetSpec, Pass, Torso};

fn resident_mb() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages = statm.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()).expect("resident pages");
    pages * 4096 / (1 << 20)
}

#[test]
fn forward_passes_without_gradients_keep_no_memory() {
    let spec = NetSpec::new(vec![4, 84, 84], 6, Torso::NatureCnn, HeadKind::Q);
    let net = Net::new(&spec, &Device::flex().autodiff()).unwrap().frozen();
    let x = Tensor::<2>::random([64, 28224], Distribution::Uniform(0.0, 1.0), &Device::flex());
    let _ = xrl::nn::to_vec(net.forward(x.clone(), &Pass::default()).q.unwrap()); // allocator warm-up
    let before = resident_mb();
    for _ in 0..20 {
        let _ = xrl::nn::to_vec(net.forward(x.clone(), &Pass::default()).q.unwrap());
    }
    let grown = resident_mb().saturating_sub(before);
    assert!(grown < 250, "20 forward passes kept {grown} MB (a leak keeps about 1,000)");
}
