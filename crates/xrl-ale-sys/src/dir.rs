/// The directory `scripts/atari-setup.py` fills: `XRL_ALE_DIR` (when not empty), else `$XDG_CACHE_HOME/xrl/ale-0.12.1`, else
/// `~/.cache/xrl/ale-0.12.1`. Shared by the build script (`include!`) and the library.
pub fn ale_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("XRL_ALE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("xrl").join("ale-0.12.1")
}
