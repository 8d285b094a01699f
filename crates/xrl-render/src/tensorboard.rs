//! TensorBoard scalar logs, written directly: an event file is a sequence of TFRecords (length, masked CRC-32C of
//! the length, payload, masked CRC-32C of the payload) whose payloads are `Event` protocol buffers. Scalars need
//! only four small messages, so they are encoded by hand here rather than through a protobuf toolchain.
//!
//! ```text
//! Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//! Summary { repeated Value value = 1; }
//! Value   { string tag = 1; float simple_value = 2; }
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli), bitwise: event files are small and written once per episode.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn event(wall_time: f64, step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = vec![(1 << 3) | 1]; // wall_time: 64-bit
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut e); // step: varint
    varint(step as u64, &mut e);
    body(&mut e);
    e
}

/// Appends scalars to one event file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<seconds>.xrl.<pid>` and writes the file-version record.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let now = wall_time();
        let path = dir.join(format!("events.out.tfevents.{}.xrl.{}", now as u64, std::process::id()));
        let mut w = EventWriter { out: BufWriter::new(File::create(&path)?), path };
        let e = event(now, 0, |e| field_bytes(3, b"brain.Event:2", e));
        w.record(&e)?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let len = (payload.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked(crc32c(&len)).to_le_bytes())?;
        self.out.write_all(payload)?;
        self.out.write_all(&masked(crc32c(payload)).to_le_bytes())
    }

    /// Logs `value` under `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f32) -> std::io::Result<()> {
        let mut v = vec![];
        field_bytes(1, tag.as_bytes(), &mut v);
        v.push((2 << 3) | 5); // simple_value: 32-bit
        v.extend_from_slice(&value.to_le_bytes());
        let mut summary = vec![];
        field_bytes(1, &v, &mut summary);
        let e = event(wall_time(), step, |e| field_bytes(5, &summary, e));
        self.record(&e)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn records_are_framed_and_checksummed() {
        let dir = std::env::temp_dir().join(format!("xrl-tb-{}", std::process::id()));
        let mut w = EventWriter::create(&dir).unwrap();
        w.scalar("train/return", 7, 1.5).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let mut at = 0;
        let mut payloads = vec![];
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let lcrc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(lcrc, masked(crc32c(&bytes[at..at + 8])));
            let p = &bytes[at + 12..at + 12 + len];
            let pcrc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(pcrc, masked(crc32c(p)));
            payloads.push(p.to_vec());
            at += 16 + len;
        }
        assert_eq!(payloads.len(), 2);
        assert!(payloads[0].windows(13).any(|w| w == b"brain.Event:2"));
        let p = &payloads[1];
        assert!(p.windows(12).any(|w| w == b"train/return"));
        assert!(p.windows(4).any(|w| w == 1.5f32.to_le_bytes()));
        // step 7 as field 2 varint
        assert!(p.windows(2).any(|w| w == [0x10, 7]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
