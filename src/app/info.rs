//! `vidapter info`: what a backbone is (architecture, parameters, input size, patch, levels,
//! mean/std) and, with `--method`, what a method adds to it (parameters per module, trainable
//! or frozen), as text or JSON.

use std::fmt;
use std::path::PathBuf;

use burn::tensor::Device;

use crate::backbone::{Backbone, Layout, VitConfig};
use crate::error::{Error, Result};
use crate::methods::{MethodConfig, ParamRow, VideoClassifier};

/// A loaded backbone, described.
#[derive(Debug, Clone)]
pub struct BackboneInfo {
    /// The backbone as given (folder, file or hub id).
    pub arg: String,
    /// The backbone as resolved.
    pub spec: String,
    /// Its weight file.
    pub weights: PathBuf,
    /// The key layout found.
    pub layout: Layout,
    /// Dtypes of the stored tensors.
    pub stored_dtypes: Vec<String>,
    /// Scalars in the model.
    pub parameters: usize,
    /// Its configuration.
    pub config: VitConfig,
}

impl BackboneInfo {
    /// The description of `backbone`, loaded from `arg`.
    pub fn of(arg: &str, backbone: &Backbone) -> Self {
        BackboneInfo {
            arg: arg.to_string(),
            spec: backbone.files.spec.clone(),
            weights: backbone.files.weights.clone(),
            layout: backbone.layout,
            stored_dtypes: backbone.stored_dtypes.clone(),
            parameters: backbone.model.param_count(),
            config: backbone.config.clone(),
        }
    }

    /// The description as JSON (`info --json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "backbone": self.arg,
            "weights": self.weights,
            "layout": format!("{:?}", self.layout),
            "stored_dtypes": self.stored_dtypes,
            "parameters": self.parameters,
            "levels": self.config.num_layers,
            "config": self.config,
        })
    }
}

impl fmt::Display for BackboneInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let layout = match self.layout {
            Layout::HuggingFace => "Hugging Face",
            Layout::OpenAiClip => "OpenAI CLIP",
        };
        writeln!(f, "backbone      {}", self.spec)?;
        writeln!(
            f,
            "weights       {} ({layout} layout, stored as {})",
            self.weights.display(),
            self.stored_dtypes.join("/")
        )?;
        writeln!(f, "architecture  {}", c.arch)?;
        writeln!(
            f,
            "parameters    {} ({:.1} M)",
            self.parameters,
            self.parameters as f64 / 1e6
        )?;
        writeln!(
            f,
            "input size    {0}x{0} (other sizes: position embeddings resampled bicubically)",
            c.image_size
        )?;
        writeln!(
            f,
            "patch         {0}x{0} ({1}x{1} grid, {2} tokens with the class token)",
            c.patch_size,
            c.grid(),
            1 + c.grid() * c.grid()
        )?;
        writeln!(
            f,
            "width         {} ({} heads, MLP {}{})",
            c.hidden_size,
            c.num_heads,
            c.intermediate_size,
            if c.swiglu { ", SwiGLU" } else { "" }
        )?;
        writeln!(
            f,
            "levels        {} blocks: levels 1..={} (0 = embeddings)",
            c.num_layers, c.num_layers
        )?;
        writeln!(
            f,
            "activation    {:?}; LayerNorm eps {:e}{}",
            c.act,
            c.layer_norm_eps,
            if c.layer_scale { "; LayerScale" } else { "" }
        )?;
        writeln!(f, "mean          {:?}", c.image_mean)?;
        writeln!(f, "std           {:?}", c.image_std)
    }
}

/// A method on a backbone, described: its parameters module by module.
#[derive(Debug, Clone)]
pub struct MethodInfo {
    /// The backbone as given.
    pub backbone: String,
    /// The method with every field resolved.
    pub method: MethodConfig,
    /// Classes of the head.
    pub classes: usize,
    /// Parameters per module, in the model's order.
    pub modules: Vec<ParamRow>,
    /// Trainable scalars.
    pub trainable: usize,
    /// All scalars, the frozen backbone's included.
    pub total: usize,
}

impl MethodInfo {
    /// The description as JSON (`info --method ... --json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "backbone": self.backbone, "method": self.method, "classes": self.classes,
            "modules": self.modules, "trainable": self.trainable, "total": self.total,
        })
    }
}

impl fmt::Display for MethodInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table: Vec<Vec<String>> = self
            .modules
            .iter()
            .map(|r| {
                vec![
                    r.module.clone(),
                    r.params.to_string(),
                    if r.trainable { "yes" } else { "frozen" }.to_string(),
                ]
            })
            .collect();
        writeln!(
            f,
            "{} on {}, {} classes",
            self.method.name(),
            self.backbone,
            self.classes
        )?;
        f.write_str(&crate::eval::plain_table(
            &["module", "parameters", "trainable"],
            &table,
        ))?;
        writeln!(
            f,
            "trainable {} of {} ({:.2}%)",
            self.trainable,
            self.total,
            100.0 * self.trainable as f64 / self.total.max(1) as f64
        )
    }
}

/// What `info` describes: a backbone, or a method on it.
#[derive(Debug, Clone)]
pub enum Info {
    /// `info --backbone B`.
    Backbone(BackboneInfo),
    /// `info --backbone B --method M`.
    Method(MethodInfo),
}

impl Info {
    /// The description as printed: JSON (pretty, one trailing newline) or text.
    pub fn render(&self, json: bool) -> String {
        if !json {
            return match self {
                Info::Backbone(b) => b.to_string(),
                Info::Method(m) => m.to_string(),
            };
        }
        let value = match self {
            Info::Backbone(b) => b.to_json(),
            Info::Method(m) => m.to_json(),
        };
        serde_json::to_string_pretty(&value).expect("json") + "\n"
    }
}

/// Loads `backbone` (folder, file or hub id) and describes it, or, with `method` (see
/// [`super::args::method`]), that method on it with a head of `classes` classes.
///
/// # Errors
/// The backbone's loading errors; a method that cannot be read or does not fit the backbone
/// (naming the field).
pub fn info(backbone: &str, method: Option<&str>, classes: usize, device: &Device) -> Result<Info> {
    let b = Backbone::load(backbone, device)?;
    let Some(method) = method else {
        return Ok(Info::Backbone(BackboneInfo::of(backbone, &b)));
    };
    let method = super::args::method(method)?;
    method
        .validate_for(&b.config)
        .map_err(|(f, r)| Error::Input(format!("--method: field `{f}`: {r}")))?;
    let model = VideoClassifier::new(b.model, &method, classes, 0, device);
    let (trainable, total) = model.param_totals();
    Ok(Info::Method(MethodInfo {
        backbone: backbone.to_string(),
        modules: model.param_rows(),
        method,
        classes,
        trainable,
        total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vit() -> BackboneInfo {
        BackboneInfo {
            arg: "vit".into(),
            spec: "/models/vit".into(),
            weights: "/models/vit/model.safetensors".into(),
            layout: Layout::HuggingFace,
            stored_dtypes: vec!["F32".into()],
            parameters: 86_389_248,
            config: VitConfig::vit_base_patch16_224(),
        }
    }

    #[test]
    fn a_backbone_is_described_line_by_line() {
        let text = vit().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 11, "{text}");
        assert_eq!(lines[0], "backbone      /models/vit");
        assert_eq!(
            lines[1],
            "weights       /models/vit/model.safetensors (Hugging Face layout, stored as F32)"
        );
        assert_eq!(lines[3], "parameters    86389248 (86.4 M)");
        assert_eq!(
            lines[5],
            "patch         16x16 (14x14 grid, 197 tokens with the class token)"
        );
        assert_eq!(
            lines[7],
            "levels        12 blocks: levels 1..=12 (0 = embeddings)"
        );
        let json = Info::Backbone(vit()).render(true);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (
                v["backbone"].as_str(),
                v["layout"].as_str(),
                v["levels"].as_u64()
            ),
            (Some("vit"), Some("HuggingFace"), Some(12))
        );
        assert!(json.ends_with("}\n"));
    }

    #[test]
    fn a_method_lists_its_modules_and_the_trainable_share() {
        let info = MethodInfo {
            backbone: "vit".into(),
            method: super::super::args::method("linear_probe").unwrap(),
            classes: 7,
            modules: vec![
                ParamRow {
                    module: "backbone".into(),
                    params: 300,
                    trainable: false,
                },
                ParamRow {
                    module: "head".into(),
                    params: 100,
                    trainable: true,
                },
            ],
            trainable: 100,
            total: 400,
        };
        let text = Info::Method(info).render(false);
        assert_eq!(
            text,
            "linear_probe on vit, 7 classes\n\
             module    parameters  trainable\n\
             --------  ----------  ---------\n\
             backbone         300  frozen\n\
             head             100  yes\n\
             trainable 100 of 400 (25.00%)\n"
        );
    }
}
