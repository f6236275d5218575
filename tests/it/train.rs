//! The training loop end to end on a tiny backbone and frame-folder clips written here:
//! a killed-and-resumed run ends with the same weights as an uninterrupted one, a checkpoint
//! holds only trainable tensors, a different backbone is refused on resume, a diverging loss
//! stops the run and keeps the last good checkpoint, and the optimiser moves only what is
//! trainable.

use crate::common;
use crate::common::fixtures::ramp_entries;

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;

use vidapter::backbone::Backbone;
use vidapter::backbone::BackboneId;
use vidapter::data::ClassMap;
use vidapter::data::loader::ClipSpec;
use vidapter::data::sampling::Sampling;
use vidapter::data::transform::SpatialConfig;
use vidapter::methods::{FeAdapterConfig, MethodConfig, VideoClassifier};
use vidapter::train::checkpoint;
use vidapter::train::config::TrainSettings;
use vidapter::train::{TrainJob, train};

fn job(root: &Path, out: &Path, epochs: usize, lr: f64, stop_after: Option<usize>) -> TrainJob {
    let device = Device::flex();
    let spec = common::fixture("vit");
    let bb = Backbone::load(spec.to_str().unwrap(), &device).unwrap();
    let method = MethodConfig::FeAdapter(FeAdapterConfig {
        bottleneck: 4,
        dropout: 0.5,
        ..Default::default()
    });
    let model = VideoClassifier::new(bb.model.clone(), &method, 2, 7, &device);
    let entries = ramp_entries(root, 6);
    TrainJob {
        model,
        method,
        classes: ClassMap::new(vec!["darker".into(), "brighter".into()]),
        backbone: BackboneId::of(
            "vit",
            std::slice::from_ref(&bb.files.weights),
            "tiny".into(),
        )
        .unwrap(),
        train: Arc::new(entries.clone()),
        val: Some(Arc::new(entries[..4].to_vec())),
        spec: ClipSpec {
            sampling: Sampling::Segment { frames: 4 },
            spatial: SpatialConfig {
                size: 32,
                short_side: 36,
                area: [0.5, 1.0],
                ratio: [0.75, 1.333],
                flip: true,
                mean: bb.config.image_mean,
                std: bb.config.image_std,
            },
        },
        settings: TrainSettings {
            epochs,
            batch_size: 2,
            accumulate: 2,
            lr,
            warmup_epochs: 0.5,
            clip_grad_norm: 1.0,
            label_smoothing: 0.1,
            seed: 3,
            workers: 2,
            ..Default::default()
        },
        out: out.to_path_buf(),
        run_config: serde_json::json!({}),
        stop_after,
        dist: None,
    }
}

#[test]
fn resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one() {
    let tmp = vidapter::util::tempdir().unwrap();
    let device = Device::flex();
    let data = tmp.path().join("data");
    let straight = tmp.path().join("straight");
    let resumed = tmp.path().join("resumed");
    let a = train(job(&data, &straight, 3, 1e-2, None), &device, false, false).unwrap();
    assert_eq!(a.epochs, 3);
    // "Killed" after its first epoch, then resumed twice.
    let b1 = train(job(&data, &resumed, 3, 1e-2, Some(1)), &device, true, false).unwrap();
    assert_eq!(b1.epochs, 1);
    train(job(&data, &resumed, 3, 1e-2, Some(1)), &device, true, false).unwrap();
    let b = train(job(&data, &resumed, 3, 1e-2, None), &device, true, false).unwrap();
    assert_eq!((b.epochs, b.steps), (a.epochs, a.steps));
    let wa = checkpoint::load(&straight.join("last.safetensors")).unwrap();
    let wb = checkpoint::load(&resumed.join("last.safetensors")).unwrap();
    assert_eq!(
        wa.weights.keys().collect::<Vec<_>>(),
        wb.weights.keys().collect::<Vec<_>>()
    );
    for (k, (_, va)) in &wa.weights {
        assert_eq!(va, &wb.weights[k].1, "{k} differs after resuming");
    }
    // Training moved the adapters (their convolutions start at zero).
    let conv = wa
        .weights
        .iter()
        .find(|(k, _)| k.contains("branches") && k.ends_with("weight"))
        .unwrap();
    assert!(conv.1.1.iter().any(|v| *v != 0.0), "{} never moved", conv.0);
    // Only trainable tensors are stored: no backbone weight, and moments for each.
    assert!(wa.weights.keys().all(|k| !k.starts_with("backbone")));
    assert_eq!(wa.moments.len(), wa.weights.len());
    // The log has a step record per optimiser step and an epoch record per epoch.
    let log = std::fs::read_to_string(straight.join("metrics.jsonl")).unwrap();
    let epochs = log
        .lines()
        .filter(|l| l.contains("\"kind\":\"epoch\""))
        .count();
    let steps = log
        .lines()
        .filter(|l| l.contains("\"kind\":\"step\""))
        .count();
    assert_eq!((epochs, steps), (3, a.steps));
    assert!(log.contains("val_uar"));
}

#[test]
fn resume_with_another_backbone_is_refused() {
    let tmp = vidapter::util::tempdir().unwrap();
    let device = Device::flex();
    let data = tmp.path().join("data");
    let out = tmp.path().join("run");
    train(job(&data, &out, 2, 1e-2, Some(1)), &device, true, false).unwrap();
    let mut other = job(&data, &out, 2, 1e-2, None);
    other.backbone.sha256 = "0".repeat(64);
    other.backbone.spec = "another-model".into();
    let err = train(other, &device, true, false).unwrap_err();
    assert!(
        matches!(
            &err,
            vidapter::Error::ResumeMismatch {
                what: "backbone",
                ..
            }
        ),
        "{err}"
    );
    let err = err.to_string();
    assert!(
        err.contains("another-model") && err.contains("same backbone"),
        "{err}"
    );
    // Issue 17, item 9: the same path with other weights prints the same description
    // twice; the hashes tell them apart.
    let mut same_name = job(&data, &out, 2, 1e-2, None);
    let mine = same_name.backbone.sha256.clone();
    same_name.backbone.sha256 = "f".repeat(64);
    let err = train(same_name, &device, true, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&mine[..12]) && err.contains(&"f".repeat(12)),
        "{err}"
    );
}

/// Issue 17, item 8: after a kill in the middle of an epoch and `--resume`, the log holds
/// each step once (the killed epoch's records are dropped before it is trained again).
#[test]
fn resumed_log_counts_each_step_once() {
    let tmp = vidapter::util::tempdir().unwrap();
    let device = Device::flex();
    let data = tmp.path().join("data");
    let out = tmp.path().join("run");
    train(job(&data, &out, 2, 1e-2, Some(1)), &device, true, false).unwrap();
    // What a kill during epoch 2 leaves: its first step records and half a line.
    let log = out.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"kind\":\"step\",\"epoch\":2,\"step\":4,\"loss\":0.7}\n{\"kind\":\"st");
    std::fs::write(&log, text).unwrap();
    let done = train(job(&data, &out, 2, 1e-2, None), &device, true, false).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let steps = text
        .lines()
        .filter(|l| l.contains("\"kind\":\"step\""))
        .count();
    let epochs = text
        .lines()
        .filter(|l| l.contains("\"kind\":\"epoch\""))
        .count();
    assert_eq!((steps, epochs), (done.steps, 2), "{text}");
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
}

/// Flips 16 bytes in the middle of tensor `name` of the checkpoint at `path`.
fn flip_tensor_bytes(path: &Path, name: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let offsets = &header[name]["data_offsets"];
    let (a, b) = (
        offsets[0].as_u64().unwrap() as usize,
        offsets[1].as_u64().unwrap() as usize,
    );
    assert!(b - a >= 16, "{name} is too small to damage");
    let at = 8 + header_len + a + (b - a) / 2 - 8;
    for x in &mut bytes[at..at + 16] {
        *x ^= 0xA5;
    }
    std::fs::write(path, bytes).unwrap();
}

/// Issue 17, item 5: a checkpoint whose tensor bytes are damaged (header intact) is refused
/// naming the file and the tensor, by `load`, by resuming and so by eval and predict; one
/// written before checksums existed still loads.
#[test]
fn damaged_checkpoint_tensor_is_refused_naming_it() {
    let tmp = vidapter::util::tempdir().unwrap();
    let device = Device::flex();
    let data = tmp.path().join("data");
    let out = tmp.path().join("run");
    train(job(&data, &out, 2, 1e-2, Some(1)), &device, true, false).unwrap();
    let last = out.join("last.safetensors");
    let pristine = std::fs::read(&last).unwrap();
    let ckpt = checkpoint::load(&last).unwrap();
    let name = ckpt
        .weights
        .iter()
        .filter(|(k, (_, v))| k.contains("branches") && v.len() >= 8)
        .map(|(k, _)| format!("model.{k}"))
        .next()
        .expect("an adapter weight");
    flip_tensor_bytes(&last, &name);
    let err = checkpoint::load(&last).err().expect("refused").to_string();
    assert!(err.contains(&name) && err.contains("damaged"), "{err}");
    assert!(err.contains(&last.display().to_string()), "{err}");
    let err = train(job(&data, &out, 2, 1e-2, None), &device, true, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&name), "{err}");

    // The same checkpoint without its checksum entry (as written before it existed) loads.
    let header_len = u64::from_le_bytes(pristine[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value =
        serde_json::from_slice(&pristine[8..8 + header_len]).unwrap();
    header["__metadata__"]
        .as_object_mut()
        .unwrap()
        .remove(vidapter::util::TENSOR_SUMS)
        .expect("new checkpoints carry checksums");
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut old = (text.len() as u64).to_le_bytes().to_vec();
    old.extend_from_slice(&text);
    old.extend_from_slice(&pristine[8 + header_len..]);
    std::fs::write(&last, old).unwrap();
    let loaded = checkpoint::load(&last).unwrap();
    assert_eq!(loaded.weights, ckpt.weights);
}

#[test]
fn diverging_loss_stops_and_keeps_the_last_good_checkpoint() {
    let tmp = vidapter::util::tempdir().unwrap();
    let device = Device::flex();
    let data = tmp.path().join("data");
    let out = tmp.path().join("run");
    train(job(&data, &out, 3, 1e-2, Some(1)), &device, true, false).unwrap();
    let before = std::fs::read(out.join("last.safetensors")).unwrap();
    let mut wild = job(&data, &out, 3, 1e30, None);
    wild.settings.clip_grad_norm = 0.0;
    let err = train(wild, &device, false, false).unwrap_err();
    assert!(
        matches!(&err, vidapter::Error::Diverged { epoch: 1, loss, .. } if !loss.is_finite()),
        "{err}"
    );
    let err = err.to_string();
    assert!(err.contains("loss became"), "{err}");
    assert!(err.contains("last.safetensors"), "{err}");
    assert_eq!(std::fs::read(out.join("last.safetensors")).unwrap(), before);
}

#[test]
fn gradient_checkpointing_changes_no_weight() {
    let tmp = vidapter::util::tempdir().unwrap();
    let device = Device::flex();
    let data = tmp.path().join("data");
    let plain = tmp.path().join("plain");
    let ckpt = tmp.path().join("ckpt");
    train(job(&data, &plain, 1, 1e-2, None), &device, false, false).unwrap();
    let mut j = job(&data, &ckpt, 1, 1e-2, None);
    j.settings.gradient_checkpointing = true;
    train(j, &device, false, false).unwrap();
    let a = checkpoint::load(&plain.join("last.safetensors")).unwrap();
    let b = checkpoint::load(&ckpt.join("last.safetensors")).unwrap();
    for (k, (_, va)) in &a.weights {
        let vb = &b.weights[k].1;
        let err = common::rel_err(vb, va);
        assert!(
            err < 1e-5,
            "{k}: rel err {err:e} with gradient checkpointing"
        );
    }
}
