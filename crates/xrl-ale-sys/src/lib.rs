//! Raw FFI to the Arcade Learning Environment 0.12.1 through a small C shim (`shim/xrl_ale.cpp`).
//!
//! Licensed GPL-2.0-only because it links ALE: any binary built with it is GPL-2.0. Safe wrappers live in
//! `xrl_env::atari` (behind xrl-env's `atari` feature); use those.
//!
//! Functions returning `c_int` status give 0 on success and −1 on a C++ exception, whose message is written to
//! `err` (NUL-terminated, at most `err_cap` bytes).

#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_float, c_int};

include!("dir.rs");

/// An opaque `ale::ALEInterface`.
#[repr(C)]
pub struct ALEInterface {
    _private: [u8; 0],
}

unsafe extern "C" {
    /// Sets ALE's logger to errors only (it prints a banner and warnings to stderr otherwise).
    pub fn xrl_ale_quiet();
    pub fn xrl_ale_new(err: *mut c_char, err_cap: usize) -> *mut ALEInterface;
    pub fn xrl_ale_free(ale: *mut ALEInterface);
    pub fn xrl_ale_set_int(
        ale: *mut ALEInterface,
        key: *const c_char,
        value: c_int,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn xrl_ale_set_float(
        ale: *mut ALEInterface,
        key: *const c_char,
        value: c_float,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn xrl_ale_set_bool(
        ale: *mut ALEInterface,
        key: *const c_char,
        value: c_int,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    /// ALE exits the process on a ROM it does not know: check the ROM's MD5 before calling this.
    pub fn xrl_ale_load_rom(ale: *mut ALEInterface, path: *const c_char, err: *mut c_char, err_cap: usize) -> c_int;
    pub fn xrl_ale_reset_game(ale: *mut ALEInterface, err: *mut c_char, err_cap: usize) -> c_int;
    pub fn xrl_ale_act(
        ale: *mut ALEInterface,
        action: c_int,
        strength: c_float,
        reward: *mut c_int,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn xrl_ale_game_over(ale: *const ALEInterface, with_truncation: c_int) -> c_int;
    pub fn xrl_ale_game_truncated(ale: *const ALEInterface) -> c_int;
    pub fn xrl_ale_lives(ale: *mut ALEInterface) -> c_int;
    pub fn xrl_ale_frame_number(ale: *const ALEInterface) -> c_int;
    pub fn xrl_ale_episode_frame_number(ale: *const ALEInterface) -> c_int;
    pub fn xrl_ale_minimal_action_set(ale: *const ALEInterface, out: *mut c_int, cap: usize) -> usize;
    pub fn xrl_ale_legal_action_set(ale: *const ALEInterface, out: *mut c_int, cap: usize) -> usize;
    pub fn xrl_ale_screen_dims(ale: *const ALEInterface, height: *mut usize, width: *mut usize);
    /// `out` must hold height × width × 3 bytes.
    pub fn xrl_ale_screen_rgb(ale: *const ALEInterface, out: *mut u8);
    /// `out` must hold 3 × height × width bytes (R, G, B planes).
    pub fn xrl_ale_screen_rgb_planar(ale: *const ALEInterface, out: *mut u8);
    /// `out` must hold 3 × height × width floats (R, G, B planes, 0–255).
    pub fn xrl_ale_screen_rgb_planar_f32(ale: *const ALEInterface, out: *mut f32);
    /// `out` must hold height × width bytes.
    pub fn xrl_ale_screen_grayscale(ale: *const ALEInterface, out: *mut u8);
    pub fn xrl_ale_ram(ale: *const ALEInterface, out: *mut u8, cap: usize) -> usize;
}
