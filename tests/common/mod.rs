//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// `tests/fixtures/backbones/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/backbones")
        .join(name)
}

/// A tensor as stored: dtype, shape, raw little-endian bytes.
pub type Raw = (Dtype, Vec<usize>, Vec<u8>);

/// Reads every tensor of a safetensors file.
pub fn read_raw(path: &Path) -> BTreeMap<String, Raw> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

/// Writes tensors as stored.
pub fn write_raw(path: &Path, tensors: &BTreeMap<String, Raw>) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (d, s, b))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Reads one f32 tensor.
pub fn read_f32(path: &Path, key: &str) -> (Vec<usize>, Vec<f32>) {
    let raw = read_raw(path);
    let (dtype, shape, bytes) = raw
        .get(key)
        .unwrap_or_else(|| panic!("{key} not in {}", path.display()));
    assert_eq!(*dtype, Dtype::F32, "{key}");
    (
        shape.clone(),
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
    )
}

/// Copies a fixture folder into a fresh temporary folder.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// `‖a − b‖ / ‖b‖`.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    vidapter::compare::rel_err(a, b)
}
