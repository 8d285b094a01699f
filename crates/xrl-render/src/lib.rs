//! Pictures and videos for xrl. This crate knows frames and maps, never networks.
//!
//! * [`write_atomic`]: every file xrl writes goes through a temporary file and a rename, so a killed run never
//!   leaves a half-written file under the final name.
//! * [`write_png`], [`write_gif`], [`write_mp4`] (H.264): still frames and animations.
//! * [`plot::learning_curve`]: episode returns against steps, as a PNG.
//! * [`heatmap`]: attribution maps normalised per frame or per episode, coloured, and overlaid on frames.

pub mod heatmap;
mod io;
pub mod plot;
pub mod report;
pub mod tensorboard;

pub use image::{Rgb, RgbImage, imageops};
pub use io::{
    DirClaim, RenderError, check_dir_free, check_input, claim_dir, claim_own_dir, is_own_temp, read_npy, read_regular,
    read_regular_string, write_atomic, write_gif, write_mp4, write_npy, write_png,
};
