//! Builds ALE 0.12.1 with cmake from the source `xrl atari setup` (scripts/atari-setup.py) unpacked, then the C shim.
//! No ALE source is part of this repository.

use std::path::{Path, PathBuf};
use std::process::Command;

include!("src/dir.rs");

fn main() {
    println!("cargo:rerun-if-env-changed=XRL_ALE_DIR");
    println!("cargo:rerun-if-env-changed=XDG_CACHE_HOME");
    println!("cargo:rerun-if-changed=shim/xrl_ale.cpp");
    println!("cargo:rerun-if-changed=src/dir.rs");
    if std::env::var_os("DOCS_RS").is_some() {
        return; // documentation builds need no library
    }
    let dir = ale_dir();
    let source = dir.join("source");
    let marker = dir.join("setup.json");
    println!("cargo:rerun-if-changed={}", marker.display());
    if !marker.is_file() || !source.join("CMakeLists.txt").is_file() {
        panic!(
            "\n\nxrl's `atari` feature needs ALE 0.12.1's source, which is not in {}.\n\
             Run `python3 scripts/atari-setup.py` (or `xrl atari setup` with a default build) first: it downloads \
             ale-py 0.12.1 from PyPI, checks it, and unpacks ALE's source and the ROMs there.\n\
             Set XRL_ALE_DIR to use another directory. cmake and zlib (Debian: cmake, zlib1g-dev) must be installed.\n",
            dir.display()
        );
    }
    let lib = build_ale(&source);
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .opt_level(3)
        .include(lib.include)
        .file("shim/xrl_ale.cpp")
        .warnings(false)
        .compile("xrl_ale_shim");
    println!("cargo:rustc-link-search=native={}", lib.dir.display());
    println!("cargo:rustc-link-lib=static={}", lib.name);
    println!("cargo:rustc-link-lib=dylib=z");
    println!("cargo:rustc-link-lib=dylib=stdc++");
}

struct Lib {
    include: PathBuf,
    dir: PathBuf,
    name: &'static str,
}

/// ALE as ale-py builds it (Release: -O3 with GCC link-time optimisation), its LTO objects then resolved into one
/// ordinary object by a relocatable `g++ -r` link, because Rust's linker cannot read GCC's LTO objects. Without
/// that (another compiler), a build without LTO: the same code, about 10 % slower.
fn build_ale(source: &Path) -> Lib {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dst = cmake::Config::new(source)
        .define("BUILD_PYTHON_LIB", "OFF")
        .define("BUILD_CPP_LIB", "ON")
        .define("SDL_SUPPORT", "OFF")
        .define("BUILD_TESTING", "OFF")
        .profile("Release")
        .out_dir(out.join("ale-release"))
        .build();
    let cxx = cc::Build::new().cpp(true).get_compiler();
    let object = out.join("ale_lto.o");
    let linked = Command::new(cxx.path())
        .args(["-r", "-O3", "-flto=auto", "-flinker-output=nolto-rel", "-o"])
        .arg(&object)
        .arg("-Wl,--whole-archive")
        .arg(dst.join("lib").join("libale.a"))
        .arg("-Wl,--no-whole-archive")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let archived = linked
        && Command::new("ar")
            .arg("crs")
            .arg(out.join("libale_lto.a"))
            .arg(&object)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if archived {
        return Lib { include: dst.join("include"), dir: out, name: "ale_lto" };
    }
    println!(
        "cargo:warning=could not resolve ALE's link-time optimisation with {}; building ALE without it",
        cxx.path().display()
    );
    // ALE's CMakeLists turns LTO on for every build type but RelWithDebInfo: use that with Release's flags.
    let dst = cmake::Config::new(source)
        .define("BUILD_PYTHON_LIB", "OFF")
        .define("BUILD_CPP_LIB", "ON")
        .define("SDL_SUPPORT", "OFF")
        .define("BUILD_TESTING", "OFF")
        .profile("RelWithDebInfo")
        .define("CMAKE_CXX_FLAGS_RELWITHDEBINFO", "-O3 -DNDEBUG")
        .define("CMAKE_C_FLAGS_RELWITHDEBINFO", "-O3 -DNDEBUG")
        .out_dir(out.join("ale-no-lto"))
        .build();
    Lib { include: dst.join("include"), dir: dst.join("lib"), name: "ale" }
}
