#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Instant;
use xrl::burn::tensor::{Device, Distribution, Tensor};
use xrl::explain::*;
use xrl::nn::*;

fn med(mut f: impl FnMut(), n: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or("all".into());
    let spec = NetSpec::new(vec![4, 84, 84], 6, Torso::NatureCnn, HeadKind::Q);
    let ad = Device::flex().autodiff();
    let plain = Device::flex();
    let net = Net::new(&spec, &ad).unwrap().frozen();
    let len = 4 * 84 * 84;
    {
        use xrl::burn::module::{Module, ModuleVisitor, Param};
        struct C(usize, usize);
        impl ModuleVisitor for C {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.0 += 1;
                if p.val().is_require_grad() {
                    self.1 += 1;
                }
            }
        }
        let mut c = C(0, 0);
        net.visit(&mut c);
        println!("params {} require_grad {}", c.0, c.1);
    }
    if which == "bw" {
        let r = |s: [usize; 2]| Tensor::<2>::random(s, Distribution::Uniform(-1.0, 1.0), &plain);
        for (name, m, k, n, conv) in [
            ("nat-fc1", 32usize, 3136usize, 512usize, false),
            ("nat-fc1 b8", 8, 3136, 512, false),
            ("nat-c1", 12800, 256, 32, true),
            ("nat-c1 b8", 3200, 256, 32, true),
            ("nat-c2", 2592, 512, 64, true),
            ("nat-c3", 1568, 576, 64, true),
            ("min-c", 2048, 36, 16, true),
            ("min-fc", 32, 1024, 128, false),
            ("nat-fc2", 32, 512, 6, false),
        ] {
            let a = r([m, k]);
            let g = r([m, n]);
            let b = if conv { r([n, k]).transpose() } else { r([k, n]) };
            let ga1 = med(
                || {
                    let _ = to_vec(g.clone().matmul(b.clone().transpose()));
                },
                30,
            );
            let ga2 = med(
                || {
                    let _ = to_vec(b.clone().matmul(g.clone().transpose()).transpose());
                },
                30,
            );
            let gb1 = med(
                || {
                    let _ = to_vec(a.clone().transpose().matmul(g.clone()));
                },
                30,
            );
            let gb2 = med(
                || {
                    let _ = to_vec(g.clone().transpose().matmul(a.clone()).transpose());
                },
                30,
            );
            println!(
                "{name} m{m} k{k} n{n}: gradA g.B^T {ga1:.3} (B.g^T)^T {ga2:.3} | gradB A^T.g {gb1:.3} (g^T.A)^T {gb2:.3}"
            );
        }
        return;
    }
    if which == "fc" {
        let r = |s: [usize; 2]| Tensor::<2>::random(s, Distribution::Uniform(-1.0, 1.0), &plain);
        for (m, k, n) in
            [(8usize, 3136usize, 512usize), (64, 3136, 512), (1, 3136, 512), (8, 1024, 128), (32, 1024, 128)]
        {
            let x = r([m, k]);
            let w = r([k, n]);
            let wt = r([n, k]);
            let g = r([m, n]);
            let gt = r([n, m]);
            let f1 = med(
                || {
                    let _ = to_vec(x.clone().matmul(w.clone()));
                },
                50,
            );
            let b1 = med(
                || {
                    let _ = to_vec(g.clone().matmul(w.clone().transpose()));
                },
                50,
            );
            let f2 = med(
                || {
                    let _ = to_vec(x.clone().matmul(wt.clone().transpose()));
                },
                50,
            );
            let b2 = med(
                || {
                    let _ = to_vec(g.clone().matmul(wt.clone()));
                },
                50,
            );
            let f3 = med(
                || {
                    let _ = to_vec(wt.clone().matmul(x.clone().transpose()));
                },
                50,
            );
            let b3 = med(
                || {
                    let _ = to_vec(wt.clone().transpose().matmul(gt.clone()));
                },
                50,
            );
            let f4 = med(
                || {
                    let _ = to_vec(w.clone().transpose().matmul(x.clone().transpose()));
                },
                50,
            );
            let b4 = med(
                || {
                    let _ = to_vec(w.clone().matmul(gt.clone()));
                },
                50,
            );
            let b5 = med(
                || {
                    let _ = to_vec(w.clone().matmul(g.clone().transpose()).transpose());
                },
                50,
            );
            println!("   W.g^T(view)^T {b5:.3}");
            println!(
                "m{m} k{k} n{n}: x.W {f1:.3}/g.W^T {b1:.3} | x.WT^T {f2:.3}/g.WT {b2:.3} | WT.x^T {f3:.3}/WT^T.gT {b3:.3} | W^T.x^T {f4:.3}/W.gT {b4:.3}"
            );
        }
        return;
    }
    if which == "mm" {
        let r = |s: [usize; 2]| Tensor::<2>::random(s, Distribution::Uniform(-1.0, 1.0), &plain);
        for (name, m, k, n) in
            [("c1", 3200, 256, 32), ("c2", 648, 512, 64), ("c3", 392, 576, 64), ("fc1", 8, 3136, 512)]
        {
            let a = r([m, k]);
            let at = r([k, m]);
            let bt = r([n, k]);
            let b = r([k, n]);
            let t1 = med(
                || {
                    let _ = to_vec(a.clone().matmul(bt.clone().transpose()));
                },
                50,
            );
            let t2 = med(
                || {
                    let _ = to_vec(at.clone().transpose().matmul(bt.clone().transpose()));
                },
                50,
            );
            let t3 = med(
                || {
                    let _ = to_vec(bt.clone().matmul(at.clone()));
                },
                50,
            );
            let t4 = med(
                || {
                    let _ = to_vec(a.clone().matmul(b.clone()));
                },
                50,
            );
            // backward: g[m,n] x W[n,k]
            let g = r([m, n]);
            let gt = r([n, m]);
            let t5 = med(
                || {
                    let _ = to_vec(g.clone().matmul(bt.clone()));
                },
                50,
            );
            let t6 = med(
                || {
                    let _ = to_vec(gt.clone().transpose().matmul(bt.clone()));
                },
                50,
            );
            let t7 = med(
                || {
                    let _ = to_vec(bt.clone().transpose().matmul(gt.clone()));
                },
                50,
            );
            let gf = 2.0 * (m * n * k) as f64 / 1e6;
            println!(
                "{name} m{m} k{k} n{n}: fwd rowA*Bt {t1:.3} colA*Bt {t2:.3} W*At {t3:.3} A*B {t4:.3} | bwd g*W {t5:.3} gcol*W {t6:.3} Wt*gT {t7:.3}  (ms; {gf:.1} MFLOP each)"
            );
        }
        return;
    }
    let bs: Vec<usize> = std::env::args().nth(2).map(|s| vec![s.parse().unwrap()]).unwrap_or(vec![1, 8, 64]);
    let reps: usize = std::env::args().nth(3).map(|s| s.parse().unwrap()).unwrap_or(20);
    for b in bs {
        let x = Tensor::<2>::random([b, len], Distribution::Uniform(0.0, 1.0), &plain);
        let xv = to_vec(x.clone());
        let target = Target::Chosen((0..b).map(|i| i % 6).collect());
        if which == "cam" {
            let t = med(
                || {
                    GradCam::new("conv3").attribute(&net, &xv, len, &target);
                },
                reps,
            );
            println!("b={b} gradcam {t:.3}");
        }
        if which == "sal1" {
            let t = med(
                || {
                    Gradient::new(GradientKind::Vanilla).attribute(&net, &xv, len, &target);
                },
                reps,
            );
            println!("b={b} sal {t:.3}");
        }
        if which == "pfwd" {
            let t = med(
                || {
                    let _ = to_vec(net.scores(x.clone()));
                },
                reps,
            );
            println!("b={b} plain fwd {t:.3}");
        }
        if which == "adfwd" {
            let xa = Tensor::<2>::from_data(x.to_data(), &ad);
            let t = med(
                || {
                    let _ = to_vec(net.scores(xa.clone()));
                },
                reps,
            );
            println!("b={b} autodiff fwd {t:.3}");
        }
        if which == "all" || which == "fwd" {
            let t = med(
                || {
                    let _ = to_vec(net.scores(x.clone()));
                },
                reps,
            );
            println!("b={b} plain fwd {t:.3} ms ({:.3}/frame)", t / b as f64);
            let xa = Tensor::<2>::from_data(x.to_data(), &ad);
            let t = med(
                || {
                    let _ = to_vec(net.scores(xa.clone()));
                },
                reps,
            );
            println!("b={b} autodiff fwd {t:.3} ms ({:.3}/frame)", t / b as f64);
        }
        if which == "all" || which == "sal" {
            let t = med(
                || {
                    Gradient::new(GradientKind::Vanilla).attribute(&net, &xv, len, &target);
                },
                reps,
            );
            println!("b={b} saliency {t:.3} ms ({:.3}/frame)", t / b as f64);
            let t = med(
                || {
                    GradCam::new("conv3").attribute(&net, &xv, len, &target);
                },
                reps,
            );
            println!("b={b} gradcam {t:.3} ms ({:.3}/frame)", t / b as f64);
        }
    }
}
#[allow(dead_code)]
fn adfwd64() {}
