//! Run-time device choice: `--device cpu | vulkan[:N] | cuda[:N]`.
//!
//! `cpu` is burn's Flex backend (always built). GPU backends exist only in builds with the
//! cargo feature of the same name; asking for one that is not built is a clear error.

use burn::tensor::Device;

use crate::error::{Error, Result};

/// Parses a device name. Model code never looks at which device it runs on.
pub fn parse(name: &str) -> Result<Device> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => {
            let index = i.parse::<usize>().map_err(|_| {
                Error::Device(format!(
                    "--device `{name}`: the part after `:` must be a GPU index such as 0"
                ))
            })?;
            (k, index)
        }
        None => (name, 0),
    };
    match kind {
        "cpu" => Ok(Device::flex()),
        "vulkan" => vulkan(index, name),
        "cuda" => cuda(index, name),
        _ => Err(Error::Device(format!(
            "--device `{name}`: unknown device; use cpu, vulkan[:N] or cuda[:N]"
        ))),
    }
}

/// Opens Vulkan GPU `index` now, so that a machine without one gets an error naming the
/// device instead of a panic inside burn at the first tensor operation. burn registers a
/// wgpu runtime once per process and refuses a second registration, so the first outcome
/// per index is kept and handed out again (tests open the device once per test).
#[cfg(feature = "vulkan")]
fn vulkan(index: usize, name: &str) -> Result<Device> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::WgpuBackend;

    type Opened = std::result::Result<Device, String>;
    static OPENED: OnceLock<Mutex<HashMap<usize, Opened>>> = OnceLock::new();
    let mut opened = OPENED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    opened
        .entry(index)
        .or_insert_with(|| {
            Device::wgpu_options()
                .device_kind(DeviceKind::DiscreteGpu(index))
                .graphics_api(WgpuBackend::Vulkan)
                .init()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| {
            Error::Device(format!(
                "--device `{name}`: cannot open discrete GPU {index} through Vulkan: {e}. `vulkaninfo --summary` lists the GPUs the Vulkan loader sees; `--device cpu` runs without one"
            ))
        })
}

#[cfg(not(feature = "vulkan"))]
fn vulkan(_index: usize, name: &str) -> Result<Device> {
    Err(Error::Device(format!(
        "--device `{name}`: this vidapter was built without Vulkan support; rebuild with `cargo build --release --features vulkan`"
    )))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize, _name: &str) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize, name: &str) -> Result<Device> {
    Err(Error::Device(format!(
        "--device `{name}`: this vidapter was built without CUDA support; rebuild with `cargo build --release --features cuda` (needs internet access at build time)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available() {
        assert!(parse("cpu").is_ok());
    }

    #[test]
    fn unknown_device_is_named() {
        let err = parse("tpu:0").unwrap_err().to_string();
        assert!(err.contains("tpu:0") && err.contains("cuda"), "{err}");
    }

    /// A GPU index no machine here has: an error naming it (not a panic inside burn), and
    /// the same answer when asked again in the same process.
    #[cfg(feature = "vulkan")]
    #[test]
    fn missing_vulkan_gpu_is_an_error() {
        for _ in 0..2 {
            let err = parse("vulkan:7").unwrap_err().to_string();
            assert!(
                err.contains("vulkan:7") && err.contains("discrete GPU 7"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_index_is_explained() {
        let err = parse("cuda:x").unwrap_err().to_string();
        assert!(err.contains("GPU index"), "{err}");
    }
}
