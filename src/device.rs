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

/// CUDA GPU `index`, after asking the driver that it exists: without the check, a machine
/// without the CUDA driver or that GPU panics inside burn at the first tensor operation.
#[cfg(feature = "cuda")]
fn cuda(index: usize, name: &str) -> Result<Device> {
    let count = cuda_gpus().map_err(|why| {
        Error::Device(format!(
            "--device `{name}`: {why}. `nvidia-smi` lists the GPUs the driver sees; `--device cpu` runs without one"
        ))
    })?;
    if index >= count {
        return Err(Error::Device(format!(
            "--device `{name}`: the CUDA driver sees {count} GPU(s), numbered from 0"
        )));
    }
    Ok(Device::cuda(index))
}

/// How many GPUs the CUDA driver sees (`cuInit`, `cuDeviceGetCount` of `libcuda.so.1`), asked
/// once per process; the library stays loaded, as burn's CUDA backend loads it again.
#[cfg(feature = "cuda")]
fn cuda_gpus() -> std::result::Result<usize, String> {
    use std::sync::OnceLock;
    static GPUS: OnceLock<std::result::Result<usize, String>> = OnceLock::new();
    GPUS.get_or_init(|| {
        type Init = unsafe extern "C" fn(u32) -> i32;
        type Count = unsafe extern "C" fn(*mut i32) -> i32;
        // SAFETY: loading the driver runs its initialisers, as cudarc does when burn first
        // uses the device; the two symbols have these C signatures in the CUDA driver API.
        unsafe {
            let lib = libloading::Library::new("libcuda.so.1")
                .or_else(|_| libloading::Library::new("libcuda.so"))
                .map_err(|e| format!("cannot load the CUDA driver library libcuda.so.1 ({e})"))?;
            let init: libloading::Symbol<Init> = lib
                .get(b"cuInit\0")
                .map_err(|e| format!("libcuda has no cuInit ({e})"))?;
            let count: libloading::Symbol<Count> = lib
                .get(b"cuDeviceGetCount\0")
                .map_err(|e| format!("libcuda has no cuDeviceGetCount ({e})"))?;
            // CUDA_ERROR_NO_DEVICE
            const NO_DEVICE: i32 = 100;
            let gpus = match init(0) {
                0 => {
                    let mut n = 0i32;
                    match count(&mut n) {
                        0 => Ok(usize::try_from(n).unwrap_or(0)),
                        rc => Err(format!("cuDeviceGetCount failed with CUDA error {rc}")),
                    }
                }
                NO_DEVICE => Ok(0),
                rc => Err(format!(
                    "the CUDA driver failed to start (cuInit: CUDA error {rc})"
                )),
            };
            std::mem::forget(lib);
            gpus
        }
    })
    .clone()
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize, name: &str) -> Result<Device> {
    Err(Error::Device(format!(
        "--device `{name}`: this vidapter was built without CUDA support; rebuild with `bash scripts/install-cuda-llvm.sh && cargo build --release --features cuda`"
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

    /// A GPU index no machine here has, or no CUDA driver at all: an error naming the device
    /// (cudarc would panic on burn's device thread).
    #[cfg(feature = "cuda")]
    #[test]
    fn missing_cuda_gpu_is_an_error() {
        for _ in 0..2 {
            let err = parse("cuda:99").unwrap_err().to_string();
            assert!(err.contains("cuda:99"), "{err}");
        }
    }
}
