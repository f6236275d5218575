//! Checkpoints: one safetensors file holding only the trainable tensors (`model.<path>`) and,
//! for resuming, the optimiser's moments (`optim.m.<path>`, `optim.v.<path>`), with a JSON
//! header entry `vidapter` saying what it is: format version, method config, class map,
//! backbone identity (architecture, config and a SHA-256 of the weight files), epoch, optimiser
//! step, and the run's metrics so far. Frozen backbone weights are never written.
//!
//! Files are written to a temporary name and renamed, so a killed run leaves either the old
//! checkpoint or the new one, never half of one.
//!
//! A second header entry, `vidapter_sha256`, maps every tensor's name to the SHA-256 of its
//! bytes; [`load`] checks each one and refuses a damaged tensor naming the file and the
//! tensor (the safetensors structure alone does not notice flipped bytes inside a tensor).
//! Checkpoints written before the checksums existed load with a warning that they cannot be
//! verified. The cost is one SHA-256 pass over the tensor bytes at load (see the README's
//! "Guarantees").

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::optim::{AdamW, Moments, trainable_layout};
use crate::backbone::BackboneId;
use crate::data::ClassMap;
use crate::error::{Error, Result};
use crate::methods::MethodConfig;

/// Checkpoint format version written and understood.
pub const FORMAT: u32 = 1;

/// The `vidapter` header entry of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`FORMAT`].
    pub format: u32,
    /// The method and its settings.
    pub method: MethodConfig,
    /// Class names in label order.
    pub classes: ClassMap,
    /// The frozen backbone.
    pub backbone: BackboneId,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: usize,
    /// Anything else the trainer keeps (run config, best metric, history).
    pub extra: serde_json::Value,
}

/// Trainable tensors of `model` by path, as `(shape, values)`.
pub fn trainable_values<M: Module>(model: &M) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    struct V(Vec<String>, BTreeMap<String, (Vec<usize>, Vec<f32>)>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let val = p.val();
            if val.is_require_grad() {
                let shape = val.dims().to_vec();
                let data = val
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 after convert");
                self.1.insert(self.0.join("."), (shape, data));
            }
        }
    }
    let mut v = V(Vec::new(), BTreeMap::new());
    model.visit(&mut v);
    v.1
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `model`'s trainable tensors, `optim`'s state and `meta` to `path` atomically.
/// `model` must be the training view (its trainable tensors require gradients).
pub fn save<M: Module>(path: &Path, model: &M, optim: &AdamW, meta: &CheckpointMeta) -> Result<()> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (k, (shape, v)) in trainable_values(model) {
        tensors.push((format!("model.{k}"), shape, bytes(&v)));
    }
    let flat = |t: &Tensor<1>| -> Vec<f32> {
        t.clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 after convert")
    };
    for (k, s) in &optim.state {
        let m = flat(&s.m);
        let v = flat(&s.v);
        tensors.push((format!("optim.m.{k}"), vec![m.len()], bytes(&m)));
        tensors.push((format!("optim.v.{k}"), vec![v.len()], bytes(&v)));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                    .expect("shape matches byte count"),
            )
        })
        .collect();
    let mut header = HashMap::from([crate::util::tensor_sums_entry(
        tensors.iter().map(|(k, _, b)| (k.as_str(), b.as_slice())),
    )]);
    header.insert(
        "vidapter".to_string(),
        serde_json::to_string(meta).expect("metadata serialises"),
    );
    let data = safetensors::serialize(views, Some(header))
        .map_err(|e| Error::format(path, format!("cannot serialise checkpoint: {e}")))?;
    crate::util::write_atomic(path, &data)
}

/// AdamW's two moments of each trainable tensor as stored, by tensor path.
pub type MomentValues = BTreeMap<String, (Vec<f32>, Vec<f32>)>;

/// A checkpoint read back.
pub struct Checkpoint {
    /// Its header.
    pub meta: CheckpointMeta,
    /// `model.*` tensors by path (without the prefix).
    pub weights: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// `optim.m.*` / `optim.v.*` by path.
    pub moments: MomentValues,
}

/// Reads a checkpoint, checking its header.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&data)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let meta_json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("vidapter"))
        .ok_or_else(|| {
            Error::format(
                path,
                "no `vidapter` header entry: this is not a vidapter checkpoint",
            )
        })?;
    let meta: CheckpointMeta = serde_json::from_str(meta_json)
        .map_err(|e| Error::format(path, format!("checkpoint header: {e}")))?;
    if meta.format != FORMAT {
        return Err(Error::format(
            path,
            format!(
                "checkpoint format {} (this vidapter reads format {FORMAT})",
                meta.format
            ),
        ));
    }
    let sums = crate::util::read_tensor_sums(header.metadata(), path)?;
    if sums.is_none() {
        tracing::warn!(
            "{}: written before checkpoints carried tensor checksums; its tensors cannot be \
             verified (save it again, e.g. by resuming, to add them)",
            path.display()
        );
    }
    let st = SafeTensors::deserialize(&data)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    if let Some(sums) = &sums {
        let names: std::collections::BTreeSet<String> =
            st.names().into_iter().map(str::to_string).collect();
        for name in &names {
            let view = st
                .tensor(name)
                .map_err(|e| Error::format(path, format!("tensor `{name}`: {e}")))?;
            crate::util::check_tensor_sum(
                sums,
                name,
                view.data(),
                path,
                "use another checkpoint (e.g. best.safetensors or an earlier copy)",
            )?;
        }
        if let Some(absent) = sums.keys().find(|k| !names.contains(*k)) {
            return Err(Error::format(
                path,
                format!("tensor `{absent}` is listed in the checksums but missing from the file"),
            ));
        }
    }
    let mut weights = BTreeMap::new();
    let mut m_parts = BTreeMap::new();
    let mut v_parts = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::TensorDtype {
                path: path.to_path_buf(),
                key: name,
                got: format!("{:?}", view.dtype()),
            });
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(k) = name.strip_prefix("model.") {
            weights.insert(k.to_string(), (view.shape().to_vec(), values));
        } else if let Some(k) = name.strip_prefix("optim.m.") {
            m_parts.insert(k.to_string(), values);
        } else if let Some(k) = name.strip_prefix("optim.v.") {
            v_parts.insert(k.to_string(), values);
        }
    }
    let moments = pair_moments(m_parts, v_parts, path)?;
    Ok(Checkpoint {
        meta,
        weights,
        moments,
    })
}

impl Checkpoint {
    /// Puts the stored trainable tensors into `model` (built with the same method config).
    /// Every trainable tensor of `model` must be present with its shape, and nothing else.
    pub fn apply<M: Module>(&self, model: M, path: &Path) -> Result<M> {
        apply_trainable(model, &self.weights, path, self.meta.method.name())
    }

    /// The optimiser state stored with the weights, on `device`, checked against `model`
    /// (read from `path`): every stored moment belongs to one of its trainable tensors and has
    /// that tensor's size.
    pub fn optimizer<M: Module>(&self, model: &M, path: &Path, device: &Device) -> Result<AdamW> {
        let layout: BTreeMap<String, usize> = trainable_layout(&model.clone().train())
            .into_iter()
            .collect();
        check_moments(&self.moments, &layout, path, self.meta.method.name())?;
        let t =
            |v: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), device);
        Ok(AdamW {
            step: self.meta.step,
            state: self
                .moments
                .iter()
                .map(|(k, (m, v))| (k.clone(), Moments { m: t(m), v: t(v) }))
                .collect(),
        })
    }
}

/// Sets `model`'s trainable tensors from `weights` (path -> (shape, values)), requiring each
/// trainable tensor to be present with its shape and no other tensor to be given. `origin`
/// and `what` (the method) only go into error messages.
pub fn apply_trainable<M: Module>(
    model: M,
    weights: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    origin: &Path,
    what: &str,
) -> Result<M> {
    let expected = trainable_values(&model.clone().train());
    for (k, (shape, _)) in &expected {
        match weights.get(k) {
            None => {
                return Err(Error::MissingTensor {
                    path: origin.to_path_buf(),
                    key: format!("model.{k}"),
                    expected: shape.clone(),
                    hint: String::new(),
                });
            }
            Some((got, _)) if got != shape => {
                return Err(Error::TensorShape {
                    path: origin.to_path_buf(),
                    key: format!("model.{k}"),
                    got: got.clone(),
                    expected: shape.clone(),
                });
            }
            _ => {}
        }
    }
    let extra: Vec<String> = weights
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .map(|k| format!("model.{k}"))
        .collect();
    if !extra.is_empty() {
        return Err(Error::UnexpectedTensors {
            path: origin.to_path_buf(),
            arch: what.to_string(),
            keys: extra,
        });
    }
    struct Set<'a>(Vec<String>, &'a BTreeMap<String, (Vec<usize>, Vec<f32>)>);
    impl ModuleMapper for Set<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some((shape, v)) = self.1.get(&self.0.join(".")) else {
                return p;
            };
            let (shape, v) = (shape.clone(), v.clone());
            p.map(|t| {
                let device = t.device();
                let grad = t.is_require_grad();
                let new = Tensor::<D>::from_data(TensorData::new(v, shape), &device);
                if grad {
                    new.set_require_grad(true)
                } else {
                    new
                }
            })
        }
    }
    Ok(model.map(&mut Set(Vec::new(), weights)))
}

/// `optim.m.*` and `optim.v.*` values (read from `path`) paired by tensor path; a tensor's two
/// moments are stored together, so one without the other is a damaged file.
fn pair_moments(
    m_parts: BTreeMap<String, Vec<f32>>,
    mut v_parts: BTreeMap<String, Vec<f32>>,
    path: &Path,
) -> Result<MomentValues> {
    let missing = |key: String, other: String, n: usize| Error::MissingTensor {
        path: path.to_path_buf(),
        key,
        expected: vec![n],
        hint: format!(" (`{other}` is there)"),
    };
    let mut moments = BTreeMap::new();
    for (k, m) in m_parts {
        let Some(v) = v_parts.remove(&k) else {
            return Err(missing(
                format!("optim.v.{k}"),
                format!("optim.m.{k}"),
                m.len(),
            ));
        };
        moments.insert(k, (m, v));
    }
    match v_parts.into_iter().next() {
        Some((k, v)) => Err(missing(
            format!("optim.m.{k}"),
            format!("optim.v.{k}"),
            v.len(),
        )),
        None => Ok(moments),
    }
}

/// Every stored moment (read from `path`, written for method `arch`) belongs to a trainable
/// tensor of `layout` (path -> element count) and has its size.
fn check_moments(
    moments: &MomentValues,
    layout: &BTreeMap<String, usize>,
    path: &Path,
    arch: &str,
) -> Result<()> {
    let extra: Vec<String> = moments
        .keys()
        .filter(|k| !layout.contains_key(*k))
        .map(|k| format!("optim.m.{k}"))
        .collect();
    if !extra.is_empty() {
        return Err(Error::UnexpectedTensors {
            path: path.to_path_buf(),
            arch: arch.to_string(),
            keys: extra,
        });
    }
    for (k, (m, v)) in moments {
        let n = layout.get(k).copied().unwrap_or_default();
        for (part, values) in [("m", m), ("v", v)] {
            if values.len() != n {
                return Err(Error::TensorShape {
                    path: path.to_path_buf(),
                    key: format!("optim.{part}.{k}"),
                    got: vec![values.len()],
                    expected: vec![n],
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    /// The load-time cost of the checksums on a ViT-B/16 full fine-tuning checkpoint: 86M f32
    /// parameters are 344 MB of weights (`best.safetensors`), three times that with the
    /// optimiser's moments (`last.safetensors`). Run with `cargo test --release --lib
    /// checksum_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a timing, not a check"]
    fn checksum_cost_on_vit_b_sized_tensors() {
        let bytes = vec![0x5Au8; 86_000_000 * 4];
        let t0 = std::time::Instant::now();
        let digest = crate::util::sha256_hex(&bytes);
        let s = t0.elapsed().as_secs_f64();
        println!(
            "SHA-256 over {} MB: {s:.3} s ({:.0} MB/s); with moments (x3): {:.2} s [{}]",
            bytes.len() / 1_000_000,
            bytes.len() as f64 / 1e6 / s,
            3.0 * s,
            &digest[..8]
        );
    }

    /// A moment without its pair, of another size than its tensor, or for a tensor the model
    /// does not train is an error naming the key, not a panic in the first update.
    #[test]
    fn stored_moments_are_checked_against_the_model() {
        use std::collections::BTreeMap;
        let path = std::path::Path::new("run/last.safetensors");
        let parts = |keys: &[&str]| -> BTreeMap<String, Vec<f32>> {
            keys.iter().map(|k| (k.to_string(), vec![0.0; 3])).collect()
        };
        let err = super::pair_moments(parts(&["a", "b"]), parts(&["a"]), path).unwrap_err();
        assert!(err.to_string().contains("`optim.v.b` is missing"), "{err}");
        let err = super::pair_moments(parts(&["a"]), parts(&["a", "c"]), path).unwrap_err();
        assert!(err.to_string().contains("`optim.m.c` is missing"), "{err}");
        let moments = super::pair_moments(parts(&["a"]), parts(&["a"]), path).unwrap();

        let layout = |n: usize| BTreeMap::from([("a".to_string(), n)]);
        assert!(super::check_moments(&moments, &layout(3), path, "fe_adapter").is_ok());
        let err = super::check_moments(&moments, &layout(4), path, "fe_adapter").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("run/last.safetensors") && msg.contains("`optim.m.a`"),
            "{msg}"
        );
        assert!(msg.contains("[3]") && msg.contains("[4]"), "{msg}");
        let other = BTreeMap::from([("b".to_string(), 3)]);
        let err = super::check_moments(&moments, &other, path, "fe_adapter").unwrap_err();
        assert!(err.to_string().contains("optim.m.a"), "{err}");
    }
}
