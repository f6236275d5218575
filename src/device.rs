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

#[cfg(feature = "vulkan")]
fn vulkan(index: usize, _name: &str) -> Result<Device> {
    Ok(Device::vulkan(burn::tensor::DeviceKind::DiscreteGpu(index)))
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

    #[test]
    fn bad_index_is_explained() {
        let err = parse("cuda:x").unwrap_err().to_string();
        assert!(err.contains("GPU index"), "{err}");
    }
}
