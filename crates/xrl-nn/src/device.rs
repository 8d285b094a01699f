//! Which burn device a command runs on. The device is chosen by the command line (`--device`), never by library
//! code: libraries take a `&Device` (or the device of the network they are given) and pass it on.
//!
//! * `cpu` (the default): burn's Flex backend, where xrl's fast products run ([`crate::fast`]);
//! * `ndarray`: burn's NdArray CPU backend (cargo feature `ndarray`), burn's generic operations only;
//! * `cuda` or `cuda:N`: burn's CUDA backend on GPU N (cargo feature `cuda`), burn's generic operations only.

use burn::tensor::Device;

/// The names `--device` accepts, for error messages.
const CHOICES: &str = "`cpu` (burn's Flex backend, the default), `ndarray` (needs the cargo feature `ndarray`) or \
                       `cuda[:N]` (needs the cargo feature `cuda`)";

/// The device named `name`: `cpu`, `ndarray`, `cuda` or `cuda:N`. A backend this build was compiled without, or an
/// unknown name, is an error that says what to do instead.
pub fn parse(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::flex()),
        "ndarray" => ndarray(),
        _ if name == "cuda" || name.starts_with("cuda:") => {
            let index = match name.strip_prefix("cuda:") {
                None => 0,
                Some(i) => i.parse::<usize>().map_err(|_| {
                    format!("`{name}`: the GPU index after `cuda:` must be a whole number, e.g. `cuda:0`")
                })?,
            };
            cuda(index)
        }
        _ => Err(format!("unknown device `{name}`; use {CHOICES}")),
    }
}

#[cfg(feature = "ndarray")]
fn ndarray() -> Result<Device, String> {
    // burn deprecates NdArray in favour of Flex; xrl keeps it as the second CPU backend its tests run on.
    #[allow(deprecated)]
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray() -> Result<Device, String> {
    Err("this build of xrl has no `ndarray` device; rebuild with `--features ndarray` (or use `--device cpu`)".into())
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device, String> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(index: usize) -> Result<Device, String> {
    Err(format!(
        "this build of xrl has no CUDA device (asked for `cuda:{index}`); rebuild with `--features cuda` (needs the \
         CUDA driver at run time), or use `--device cpu`"
    ))
}

/// The device the tests run on: `XRL_TEST_DEVICE` (a name [`parse`] takes; `cpu` when unset), so that the same
/// tests run a second time on another backend, e.g. `XRL_TEST_DEVICE=ndarray cargo test --features xrl-nn/ndarray`.
/// For tests only: panics on a name it cannot use.
pub fn for_tests() -> Device {
    let name = std::env::var("XRL_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    parse(&name).unwrap_or_else(|e| panic!("XRL_TEST_DEVICE={name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_flex() {
        assert!(crate::fast::on_flex(&parse("cpu").unwrap()));
        assert!(crate::fast::on_flex(&parse("cpu").unwrap().autodiff()));
    }

    #[test]
    fn unknown_names_list_the_choices() {
        for bad in ["gpu", "", "CPU", "cuda0"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("unknown device") && e.contains("`cpu`") && e.contains("cuda[:N]"), "{bad}: {e}");
        }
        assert!(parse("cuda:x").unwrap_err().contains("whole number"));
    }

    #[cfg(not(feature = "ndarray"))]
    #[test]
    fn ndarray_without_its_feature_says_how_to_rebuild() {
        assert!(parse("ndarray").unwrap_err().contains("--features ndarray"));
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_is_not_flex() {
        let d = parse("ndarray").unwrap();
        assert!(!crate::fast::on_flex(&d) && !crate::fast::on_flex(&d.autodiff()));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_its_feature_says_how_to_rebuild() {
        for name in ["cuda", "cuda:1"] {
            assert!(parse(name).unwrap_err().contains("--features cuda"), "{name}");
        }
    }
}
