//! Builds ALE 0.12.1 with cmake from the source `xrl atari setup` (scripts/atari-setup.py) unpacked, then the C shim.
//! No ALE source is part of this repository.

use std::path::PathBuf;

fn ale_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XRL_ALE_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("xrl").join("ale-0.12.1")
}

fn main() {
    println!("cargo:rerun-if-env-changed=XRL_ALE_DIR");
    println!("cargo:rerun-if-env-changed=XDG_CACHE_HOME");
    println!("cargo:rerun-if-changed=shim/xrl_ale.cpp");
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
    let dst = cmake::Config::new(&source)
        .define("BUILD_PYTHON_LIB", "OFF")
        .define("BUILD_CPP_LIB", "ON")
        .define("SDL_SUPPORT", "OFF")
        .define("BUILD_TESTING", "OFF")
        // ALE's CMakeLists turns on GCC link-time optimisation for every build type but RelWithDebInfo; Rust's
        // linker cannot read GCC's LTO objects, so build RelWithDebInfo with Release's flags (-O3, no -g).
        .profile("RelWithDebInfo")
        .define("CMAKE_CXX_FLAGS_RELWITHDEBINFO", "-O3 -DNDEBUG")
        .define("CMAKE_C_FLAGS_RELWITHDEBINFO", "-O3 -DNDEBUG")
        .build();
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .opt_level(3)
        .include(dst.join("include"))
        .file("shim/xrl_ale.cpp")
        .warnings(false)
        .compile("xrl_ale_shim");
    println!("cargo:rustc-link-search=native={}", dst.join("lib").display());
    println!("cargo:rustc-link-lib=static=ale");
    println!("cargo:rustc-link-lib=dylib=z");
    println!("cargo:rustc-link-lib=dylib=stdc++");
}
