use image::RgbImage;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RenderError {
    // `err`, not `source`: the OS error is part of this message, not a cause to be printed again after it.
    #[error("cannot write {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("cannot encode {path}: {message}")]
    Encode { path: PathBuf, message: String },
    #[error("nothing to write to {path}: no frames")]
    NoFrames { path: PathBuf },
    #[error(
        "frame {index} is {got:?} pixels but the first frame is {expected:?}; all frames of a video must share one size"
    )]
    FrameSize { index: usize, got: (u32, u32), expected: (u32, u32) },
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error(
        "will not write {path}: it is {what}, not a regular file; choose a file name (its directory is created if missing)"
    )]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("cannot use {path} as the output directory: {message}")]
    OutDir { path: PathBuf, message: String },
}

/// What `path` names if it is not a regular file xrl may replace (`None`: a regular file, or nothing yet).
fn special(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = std::fs::metadata(path).ok()?.file_type();
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    })
}

/// A directory a job writes its results into, claimed for the job's lifetime (see [`claim_dir`]); the claim is
/// released when dropped.
#[derive(Debug)]
pub struct DirClaim {
    marker: PathBuf,
    _lock: File,
}

impl Drop for DirClaim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.marker);
    }
}

/// Claims `dir` for one job's outputs: created if missing, and refused when it holds anything already (a user's
/// files would be overwritten, or an earlier job's results mixed with this one's) or when another process holds
/// the claim (two jobs writing one directory). The claim is an exclusive `flock` on `.xrl-claim` inside it: a job
/// killed before it could remove the file leaves no lock behind, and the next job takes the file over.
pub fn claim_dir(dir: &Path) -> Result<DirClaim, RenderError> {
    let refuse = |message: String| RenderError::OutDir { path: dir.to_path_buf(), message };
    check_dir_free(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| refuse(format!("cannot create it ({e}); choose another directory")))?;
    let claim = claim_own_dir(dir)?;
    // The lock is ours; what another job wrote before we got it is checked once more.
    check_dir_free(dir)?;
    Ok(claim)
}

/// Claims `dir`, which holds an earlier run of the same job (the caller checked its card), to resume it: only
/// the lock is taken, nothing in it is checked or removed.
pub fn claim_own_dir(dir: &Path) -> Result<DirClaim, RenderError> {
    let refuse = |message: String| RenderError::OutDir { path: dir.to_path_buf(), message };
    let marker = dir.join(".xrl-claim");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&marker)
        .map_err(|e| refuse(format!("cannot write into it ({e}); choose another directory")))?;
    match lock.try_lock() {
        Ok(()) => Ok(DirClaim { marker, _lock: lock }),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(refuse("another xrl process is writing into it; wait for it, or choose another directory".into()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(refuse(format!("cannot lock it ({e})"))),
    }
}

/// What [`claim_dir`] refuses, checked without creating anything (so that a job can refuse before it works):
/// `dir` must be absent or an empty directory (a claim file of another job aside, which `claim_dir` reports).
pub fn check_dir_free(dir: &Path) -> Result<(), RenderError> {
    let refuse = |message: String| RenderError::OutDir { path: dir.to_path_buf(), message };
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(refuse(format!(
            "it is {}, not a directory; choose a new or empty directory (it is created if missing)",
            special(dir).unwrap_or("a file")
        )));
    }
    let entries: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| refuse(format!("cannot list it ({e})")))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".xrl-claim" && !is_own_temp(n))
        .collect();
    if let Some(first) = entries.first() {
        return Err(refuse(format!(
            "not empty (it holds {} entries, e.g. `{first}`); nothing was changed. Choose a new or empty directory, \
             so that nothing in it is overwritten",
            entries.len()
        )));
    }
    Ok(())
}

/// Whether `name` is a temporary file [`write_atomic`] leaves when its process is killed mid-write
/// (`.NAME.tmp-PID`): never the user's, and never read.
pub fn is_own_temp(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(".tmp-").is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// `std::fs::read` for files a command finds in a run or an output directory: a FIFO (or device, or directory)
/// there is an `InvalidInput` error naming what it is, not a read that blocks forever.
pub fn read_regular(path: impl AsRef<Path>) -> std::io::Result<Vec<u8>> {
    let path = path.as_ref();
    if let Some(what) = special(path) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file; put the file back (or remove what is there)"),
        ));
    }
    std::fs::read(path)
}

/// [`read_regular`] as text.
pub fn read_regular_string(path: impl AsRef<Path>) -> std::io::Result<String> {
    String::from_utf8(read_regular(path)?).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Checks that `path` names a regular file to read (following links): a FIFO would block the reader forever, and a
/// directory or device is not data.
pub fn check_input(path: &Path) -> Result<(), RenderError> {
    match std::fs::metadata(path) {
        Err(e) => Err(RenderError::Read { path: path.to_path_buf(), message: e.to_string() }),
        Ok(_) => match special(path) {
            None => Ok(()),
            Some(what) => Err(RenderError::Read {
                path: path.to_path_buf(),
                message: format!("it is {what}, not a regular file; give the path of a file"),
            }),
        },
    }
}

/// Writes `path` atomically: `fill` writes into a temporary file beside it, which is synced and then renamed over
/// `path`. Missing parent directories are created. On any error the temporary file is removed.
///
/// Only a regular file (or nothing) is ever replaced: a directory, FIFO, device or socket at `path` is an error
/// (renaming over a device as root would replace the device). A symbolic link is followed: the file it points to
/// is replaced, atomically beside it, and the link stays.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<(), RenderError>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<(), RenderError>,
{
    let given = path;
    let resolved;
    let path = match std::fs::symlink_metadata(given) {
        Ok(m) if m.file_type().is_symlink() => {
            resolved = std::fs::canonicalize(given).unwrap_or_else(|_| {
                // A dangling link: write the file it names, relative to the link's directory.
                let target = std::fs::read_link(given).unwrap_or_default();
                given.parent().map_or(target.clone(), |d| d.join(target))
            });
            resolved.as_path()
        }
        _ => given,
    };
    if let Some(what) = special(path) {
        return Err(RenderError::NotAFile { path: given.to_path_buf(), what });
    }
    let io = |source| RenderError::Io { path: path.to_path_buf(), err: source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp).map_err(io)?);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes one PNG.
pub fn write_png(path: &Path, img: &RgbImage) -> Result<(), RenderError> {
    write_atomic(path, |w| {
        img.write_to(w, image::ImageFormat::Png)
            .map_err(|e| RenderError::Encode { path: path.to_path_buf(), message: e.to_string() })
    })
}

/// Writes an endlessly looping GIF at `fps` frames per second (GIF delays are in 1/100 s, so the rate is rounded).
pub fn write_gif(path: &Path, frames: &[RgbImage], fps: f32) -> Result<(), RenderError> {
    let first = frames.first().ok_or_else(|| RenderError::NoFrames { path: path.to_path_buf() })?;
    let size = first.dimensions();
    if let Some((index, f)) = frames.iter().enumerate().find(|(_, f)| f.dimensions() != size) {
        return Err(RenderError::FrameSize { index, got: f.dimensions(), expected: size });
    }
    let (w, h) = (u16::try_from(size.0).map_err(|_| too_big(path))?, u16::try_from(size.1).map_err(|_| too_big(path))?);
    let delay = (100.0 / fps.max(0.01)).round().clamp(1.0, 65535.0) as u16;
    let enc = |e: gif::EncodingError| RenderError::Encode { path: path.to_path_buf(), message: e.to_string() };
    write_atomic(path, |out| {
        let mut encoder = gif::Encoder::new(&mut *out, w, h, &[]).map_err(enc)?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(enc)?;
        for f in frames {
            let mut frame = exact_palette_frame(w, h, f.as_raw())
                // Many colours (a heat-map overlay): NeuQuant at speed 10 of 1..30.
                .unwrap_or_else(|| gif::Frame::from_rgb_speed(w, h, f.as_raw(), 10));
            frame.delay = delay;
            encoder.write_frame(&frame).map_err(enc)?;
        }
        drop(encoder);
        out.flush().map_err(|source| RenderError::Io { path: path.to_path_buf(), err: source })
    })
}

/// A frame with its exact colours when it has at most 256 (game frames usually do): no quantisation, so thin
/// details such as cell borders survive.
fn exact_palette_frame(w: u16, h: u16, rgb: &[u8]) -> Option<gif::Frame<'static>> {
    let mut index: std::collections::HashMap<[u8; 3], u8> = std::collections::HashMap::new();
    let mut palette = Vec::new();
    let mut pixels = Vec::with_capacity(rgb.len() / 3);
    for px in rgb.chunks_exact(3) {
        let key = [px[0], px[1], px[2]];
        let i = match index.get(&key) {
            Some(&i) => i,
            None => {
                let i = u8::try_from(index.len()).ok()?;
                index.insert(key, i);
                palette.extend_from_slice(&key);
                i
            }
        };
        pixels.push(i);
    }
    Some(gif::Frame::from_palette_pixels(w, h, pixels, palette, None))
}

/// Writes an H.264 MP4 at `fps` frames per second (OpenH264, muxed by muxide; plays in browsers and players).
/// Odd widths or heights are padded with one black row or column, as H.264 needs even dimensions.
pub fn write_mp4(path: &Path, frames: &[RgbImage], fps: f32) -> Result<(), RenderError> {
    use openh264::OpenH264API;
    use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, FrameType};
    use openh264::formats::{RgbSliceU8, YUVBuffer};
    let first = frames.first().ok_or_else(|| RenderError::NoFrames { path: path.to_path_buf() })?;
    let size = first.dimensions();
    if let Some((index, f)) = frames.iter().enumerate().find(|(_, f)| f.dimensions() != size) {
        return Err(RenderError::FrameSize { index, got: f.dimensions(), expected: size });
    }
    let (w, h) = (size.0 + size.0 % 2, size.1 + size.1 % 2);
    let enc = |message: String| RenderError::Encode { path: path.to_path_buf(), message };
    let config =
        EncoderConfig::new().bitrate(BitRate::from_bps(4_000_000)).max_frame_rate(FrameRate::from_hz(fps.max(1.0)));
    let mut encoder =
        Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| enc(format!("H.264 encoder: {e}")))?;
    let mut packets = Vec::with_capacity(frames.len());
    for f in frames {
        let mut padded = RgbImage::new(w, h);
        image::imageops::replace(&mut padded, f, 0, 0);
        let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(padded.as_raw(), (w as usize, h as usize)));
        let bits = encoder.encode(&yuv).map_err(|e| enc(format!("H.264 encoding: {e}")))?;
        packets.push((bits.to_vec(), matches!(bits.frame_type(), FrameType::IDR | FrameType::I)));
    }
    write_atomic(path, |out| {
        let mut muxer = muxide::api::MuxerBuilder::new(&mut *out)
            .video(muxide::api::VideoCodec::H264, w, h, fps as f64)
            .build()
            .map_err(|e| enc(format!("MP4 muxer: {e}")))?;
        for (i, (data, key)) in packets.iter().enumerate() {
            muxer.write_video(i as f64 / fps as f64, data, *key).map_err(|e| enc(format!("MP4 muxer: {e}")))?;
        }
        muxer.finish().map_err(|e| enc(format!("MP4 muxer: {e}")))
    })
}

/// Writes f32 values of the given shape as a NumPy `.npy` file (format 1.0, little-endian, C order).
pub fn write_npy(path: &Path, shape: &[usize], values: &[f32]) -> Result<(), RenderError> {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "shape {shape:?} does not hold {} values", values.len());
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64.
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    write_atomic(path, |w| {
        let io = |source| RenderError::Io { path: path.to_path_buf(), err: source };
        w.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
        w.write_all(&(header.len() as u16).to_le_bytes()).map_err(io)?;
        w.write_all(header.as_bytes()).map_err(io)?;
        for v in values {
            w.write_all(&v.to_le_bytes()).map_err(io)?;
        }
        Ok(())
    })
}

/// Reads a NumPy `.npy` file of little-endian `f4`, `f8` or `u1` values in C order (format 1, 2 or 3) as f32:
/// (shape, values). Anything else is an error saying what the file holds and what would be read.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>), RenderError> {
    let bad = |message: String| RenderError::Read { path: path.to_path_buf(), message };
    check_input(path)?;
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a NumPy .npy file (save the array with numpy.save)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(bad(format!("unknown .npy format version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated .npy header".into()))?;
    // The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr").and_then(|d| d.split('\'').nth(1)).ok_or_else(|| bad("no dtype in header".into()))?;
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad("the array is in Fortran order; save numpy.ascontiguousarray(a) instead".into()));
    }
    let shape_text = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in header".into()))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| bad(format!("bad shape `({shape_text})`"))))
        .collect::<Result<_, _>>()?;
    let count =
        shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= bytes.len()).ok_or_else(|| {
            bad(format!("shape {shape:?} needs more values than the file holds; the file is damaged"))
        })?;
    let data = &bytes[start + header_len..];
    let values: Vec<f32> = match descr {
        "<f4" | "=f4" => {
            data.chunks_exact(4).take(count).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        "<f8" | "=f8" => data
            .chunks_exact(8)
            .take(count)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        "|u1" => data.iter().take(count).map(|&b| b as f32).collect(),
        "|b1" => data.iter().take(count).map(|&b| f32::from(b != 0)).collect(),
        "|i1" => data.iter().take(count).map(|&b| b as i8 as f32).collect(),
        // Integers (NumPy's default for action indices is int64); values beyond 2^24 lose precision as f32.
        "<i2" | "<u2" | "<i4" | "<u4" | "<i8" | "<u8" => {
            let width = descr[2..].parse::<usize>().expect("a width");
            let signed = descr.as_bytes()[1] == b'i';
            data.chunks_exact(width)
                .take(count)
                .map(|b| {
                    let mut x = [0u8; 8];
                    x[..width].copy_from_slice(b);
                    if signed && b[width - 1] & 0x80 != 0 {
                        x[width..].fill(0xFF);
                    }
                    if signed { i64::from_le_bytes(x) as f32 } else { u64::from_le_bytes(x) as f32 }
                })
                .collect()
        }
        d => {
            return Err(bad(format!(
                "dtype `{d}` is not read; save little-endian float32, float64, integer or bool values"
            )));
        }
    };
    if values.len() != count {
        return Err(bad(format!(
            "the file is truncated: shape {shape:?} needs {count} values, it holds {}",
            values.len()
        )));
    }
    Ok((shape, values))
}

fn too_big(path: &Path) -> RenderError {
    RenderError::Encode { path: path.to_path_buf(), message: "GIF frames are limited to 65535×65535 pixels".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A killed writer's temporary file (`.NAME.tmp-PID`) leaves the directory free for the job to start again;
    /// anything else in it is the user's.
    #[test]
    fn a_killed_writers_temporary_file_is_not_the_users() {
        assert!(is_own_temp(".fsm.json.tmp-15440") && is_own_temp(".a.tmp-1"));
        assert!(!is_own_temp("fsm.json.tmp-1") && !is_own_temp(".notes.tmp-") && !is_own_temp(".x.tmp-12a"));
        let d = std::env::temp_dir().join(format!("xrl-own-temp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(".fsm.json.tmp-99"), "half").unwrap();
        assert!(check_dir_free(&d).is_ok());
        std::fs::write(d.join(".mine.tmp"), "mine").unwrap();
        assert!(check_dir_free(&d).unwrap_err().to_string().contains("not empty"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Only regular files are replaced: a directory, a FIFO and a device are refused and left as they were; a
    /// symbolic link is written through (the link stays, its target gets the new bytes).
    #[test]
    fn write_atomic_replaces_regular_files_only_and_follows_links() {
        let dir = std::env::temp_dir().join(format!("xrl-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let bytes = |b: &'static [u8]| {
            move |w: &mut BufWriter<File>| w.write_all(b).map_err(|e| RenderError::Io { path: "x".into(), err: e })
        };
        let e = write_atomic(&dir.join("sub"), bytes(b"x")).unwrap_err().to_string();
        assert!(e.contains("a directory") && e.contains("choose a file name"), "{e}");
        assert!(dir.join("sub").is_dir());
        let fifo = dir.join("fifo");
        if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
            let e = write_atomic(&fifo, bytes(b"x")).unwrap_err().to_string();
            assert!(e.contains("FIFO"), "{e}");
        }
        let e = write_atomic(Path::new("/dev/null"), bytes(b"x")).unwrap_err().to_string();
        assert!(e.contains("a device"), "{e}");
        let target = dir.join("target.txt");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.join("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, bytes(b"new")).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        write_atomic(&target, bytes(b"plain")).unwrap();
        assert_eq!(std::fs::read(&link).unwrap(), b"plain");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn npy_round_trips_and_reads_numpy_files() {
        let dir = std::env::temp_dir().join(format!("xrl-render-npy-{}", std::process::id()));
        let path = dir.join("a.npy");
        let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_npy(&path, &[2, 3, 4], &values).unwrap();
        assert_eq!(read_npy(&path).unwrap(), (vec![2, 3, 4], values));
        // Written by numpy 2.4: np.save(f, np.arange(6, dtype=np.float64).reshape(2, 3) / 4) and a uint8 (3,) array.
        let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        assert_eq!(
            read_npy(&fixtures.join("f64_2x3.npy")).unwrap(),
            (vec![2, 3], vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
        );
        assert_eq!(read_npy(&fixtures.join("u8_3.npy")).unwrap(), (vec![3], vec![7.0, 0.0, 255.0]));
        // Integer and bool arrays (NumPy's int64 is what `np.save(f, actions)` writes for action indices).
        assert_eq!(read_npy(&fixtures.join("i64_4.npy")).unwrap(), (vec![4], vec![-2.0, 0.0, 5.0, 1048576.0]));
        assert_eq!(read_npy(&fixtures.join("i32_3.npy")).unwrap(), (vec![3], vec![-1.0, 3.0, 2.0]));
        assert_eq!(read_npy(&fixtures.join("bool_3.npy")).unwrap(), (vec![3], vec![1.0, 0.0, 1.0]));
        std::fs::write(&path, b"not numpy").unwrap();
        assert!(read_npy(&path).unwrap_err().to_string().contains("not a NumPy"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gif_round_trips_frames_and_timing() {
        let dir = std::env::temp_dir().join(format!("xrl-render-test-{}", std::process::id()));
        let path = dir.join("a.gif");
        let frames: Vec<RgbImage> = (0..3u8)
            .map(|i| {
                RgbImage::from_fn(8, 6, |x, _| image::Rgb(if x < 4 { [255 * (i % 2), 0, 0] } else { [0, 0, 255] }))
            })
            .collect();
        write_gif(&path, &frames, 10.0).unwrap();
        let mut decoder = gif::DecodeOptions::new();
        decoder.set_color_output(gif::ColorOutput::RGBA);
        let mut d = decoder.read_info(File::open(&path).unwrap()).unwrap();
        let mut n = 0;
        while let Some(f) = d.read_next_frame().unwrap() {
            assert_eq!((f.width, f.height, f.delay), (8, 6, 10));
            let px = |x: usize| &f.buffer[x * 4..x * 4 + 3];
            assert_eq!(px(7), &[0, 0, 255]);
            assert_eq!(px(0)[0] > 128, n % 2 == 1, "frame {n} left half");
            n += 1;
        }
        assert_eq!(n, 3);
        // No temporary file is left beside the output.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.gif")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mp4_has_an_mp4_header_and_one_sample_per_frame() {
        let path = std::env::temp_dir().join(format!("xrl-mp4-{}.mp4", std::process::id()));
        let frames: Vec<RgbImage> =
            (0..12u8).map(|i| RgbImage::from_pixel(33, 21, image::Rgb([20 * i, 100, 200]))).collect();
        write_mp4(&path, &frames, 8.0).unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(&b[4..8], b"ftyp");
        let find = |tag: &[u8]| b.windows(4).position(|w| w == tag);
        let stsz = find(b"stsz").expect("a sample-size table");
        // stsz: version/flags (4), uniform size (4), sample count (4).
        let count = u32::from_be_bytes(b[stsz + 12..stsz + 16].try_into().unwrap());
        assert_eq!(count, 12);
        assert!(find(b"avc1").is_some() && find(b"mdat").is_some());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn npy_header_is_aligned_and_data_follows() {
        let path = std::env::temp_dir().join(format!("xrl-npy-{}.npy", std::process::id()));
        write_npy(&path, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.5]).unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.contains("'shape': (2, 3)") && header.ends_with('\n'));
        assert_eq!(f32::from_le_bytes(b[10 + hlen + 20..10 + hlen + 24].try_into().unwrap()), 5.5);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn mismatched_frames_and_empty_videos_are_errors() {
        let path = std::env::temp_dir().join("xrl-never-written.gif");
        assert!(matches!(write_gif(&path, &[], 10.0), Err(RenderError::NoFrames { .. })));
        let frames = [RgbImage::new(4, 4), RgbImage::new(5, 4)];
        let err = write_gif(&path, &frames, 10.0).unwrap_err();
        assert!(err.to_string().contains("frame 1"), "{err}");
        assert!(!path.exists());
    }
}
