//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod faces;
pub mod fixtures;
pub mod grad;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::{Dtype, SafeTensors};

/// The device the parity tests run on: `$VIDAPTER_TEST_DEVICE` (`cpu`, `vulkan[:N]` or
/// `cuda[:N]`, as `--device` takes), the CPU (`Device::flex()`) when unset. A GPU name needs
/// a test build with that backend's cargo feature (`--features vulkan`); asking for one the
/// build lacks, or a malformed name, fails the test with the reason rather than quietly
/// testing the CPU.
pub fn device() -> burn::tensor::Device {
    match std::env::var("VIDAPTER_TEST_DEVICE") {
        Err(std::env::VarError::NotPresent) => burn::tensor::Device::flex(),
        Ok(name) if name.trim().is_empty() || name.trim() == "cpu" => burn::tensor::Device::flex(),
        Ok(name) => vidapter::device::parse(name.trim())
            .unwrap_or_else(|e| panic!("VIDAPTER_TEST_DEVICE={name}: {e}")),
        Err(e) => panic!("VIDAPTER_TEST_DEVICE: {e}"),
    }
}

/// Whether [`device`] is a GPU (`$VIDAPTER_TEST_DEVICE` names one): GPU kernels round
/// differently from the CPU's, so a few tolerances depend on it.
pub fn on_gpu() -> bool {
    std::env::var("VIDAPTER_TEST_DEVICE").is_ok_and(|n| !(n.trim().is_empty() || n.trim() == "cpu"))
}

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
pub fn copy_fixture(name: &str) -> vidapter::util::TempDir {
    let dir = vidapter::util::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// `‖a − b‖ / ‖b‖`.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    vidapter::eval::compare::rel_err(a, b)
}

/// `(ParamId, path, requires grad)` of every float parameter of `model`, in visiting order.
pub fn params(
    model: &vidapter::methods::VideoClassifier,
) -> Vec<(burn::module::ParamId, String, bool)> {
    use burn::module::{Module, ModuleVisitor, Param, ParamId};
    use burn::tensor::Tensor;
    struct V(Vec<String>, Vec<(ParamId, String, bool)>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1
                .push((p.id, self.0.join("."), p.val().is_require_grad()));
        }
    }
    let mut v = V(Vec::new(), Vec::new());
    model.visit(&mut v);
    v.1
}

/// Gradients of the cross-entropy (label smoothing 0.1) of `model` on `x`, `y`, for every
/// parameter that has one, by path.
pub fn grads_by_path(
    model: &vidapter::methods::VideoClassifier,
    x: burn::tensor::Tensor<5>,
    y: &[usize],
) -> BTreeMap<String, Vec<f32>> {
    let loss = vidapter::train::loss::cross_entropy(model.forward(x, None), y, 0.1);
    grads_of(model, &loss.backward())
}

/// The gradients in `grads` of every parameter of `model` that has one, by path.
pub fn grads_of(
    model: &vidapter::methods::VideoClassifier,
    grads: &burn::tensor::Gradients,
) -> BTreeMap<String, Vec<f32>> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::{Gradients, Tensor};
    struct G<'a>(Vec<String>, &'a Gradients, BTreeMap<String, Vec<f32>>);
    impl ModuleVisitor for G<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = p.val().grad(self.1) {
                self.2
                    .insert(self.0.join("."), g.into_data().try_to_vec::<f32>().unwrap());
            }
        }
    }
    let mut g = G(Vec::new(), grads, BTreeMap::new());
    model.visit(&mut g);
    g.2
}

/// Runs the built `vidapter` binary with `args`.
pub fn vidapter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the built binary with `args` from the working directory `cwd`.
pub fn vidapter_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A finished command's stdout followed by its stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A committed tiny backbone (`tests/fixtures/backbones/<name>`), loaded on the CPU.
pub fn backbone(name: &str) -> vidapter::backbone::VisionTransformer {
    let dir = fixture(name);
    vidapter::backbone::Backbone::load(dir.to_str().unwrap(), &burn::tensor::Device::flex())
        .unwrap()
        .model
}

/// `[b, t, 3, size, size]` standard-normal clips drawn from `seed`.
pub fn clips(
    b: usize,
    t: usize,
    size: usize,
    seed: u64,
    device: &burn::tensor::Device,
) -> burn::tensor::Tensor<5> {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = rand_distr::Normal::new(0.0f32, 1.0).unwrap();
    let n = b * t * 3 * size * size;
    let data: Vec<f32> = (0..n).map(|_| normal.sample(&mut rng)).collect();
    burn::tensor::Tensor::from_data(
        burn::tensor::TensorData::new(data, [b, t, 3, size, size]),
        device,
    )
}

/// A tensor's values as f32.
pub fn to_vec<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}
