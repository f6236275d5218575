//! `vidapter synth`: generate a synthetic video dataset ([`crate::data::synth`]) and say what
//! was written.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use crate::data::synth::{self, SynthConfig, SynthSummary};
use crate::error::Result;

/// What `synth` wrote, and how long it took.
#[derive(Debug, Clone)]
pub struct SynthReport {
    /// The generator's summary.
    pub summary: SynthSummary,
    /// Frame rate stored in the videos.
    pub fps: u32,
    /// Wall-clock seconds of the generation.
    pub seconds: f64,
}

impl fmt::Display for SynthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        let c = &s.counts;
        writeln!(
            f,
            "{}: {} classes, {} train + {} val + {} test clips of {} frames {}x{} at {} fps, {} ({:.1} s)",
            s.kind,
            s.classes.len(),
            c.train,
            c.val,
            c.test,
            s.frames,
            s.size,
            s.size,
            self.fps,
            s.codec,
            self.seconds
        )?;
        writeln!(f, "classes: {}", s.classes.join(" "))?;
        if c.images > 0 {
            writeln!(
                f,
                "still images: {} ({}), listed in images.txt",
                c.images,
                s.image_classes.join(" ")
            )?;
        }
        writeln!(f, "wrote {}", s.dir.join("dataset.toml").display())
    }
}

/// Generates the dataset `cfg` describes into `out`; with `force`, into a non-empty folder
/// that is not an earlier synth output too ([`synth::generate_forced`]).
///
/// # Errors
/// Those of [`synth::generate`].
pub fn synth(cfg: &SynthConfig, out: &Path, force: bool, progress: bool) -> Result<SynthReport> {
    let start = Instant::now();
    let summary = if force {
        synth::generate_forced(cfg, out, progress)?
    } else {
        synth::generate(cfg, out, progress)?
    };
    Ok(SynthReport {
        summary,
        fps: cfg.fps,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::{SplitCounts, SynthKind};

    fn report(images: usize) -> SynthReport {
        SynthReport {
            summary: SynthSummary {
                kind: SynthKind::Expressions,
                classes: vec!["a".into(), "b".into()],
                image_classes: vec!["neutral".into(), "smile".into()],
                counts: SplitCounts {
                    train: 4,
                    val: 2,
                    test: 2,
                    images,
                },
                dir: "out".into(),
                codec: "jpeg frames".into(),
                frames: 8,
                size: 32,
            },
            fps: 8,
            seconds: 1.26,
        }
    }

    #[test]
    fn the_summary_names_counts_classes_and_the_dataset_file() {
        assert_eq!(
            report(0).to_string(),
            "expressions: 2 classes, 4 train + 2 val + 2 test clips of 8 frames 32x32 at 8 fps, jpeg frames (1.3 s)\n\
             classes: a b\n\
             wrote out/dataset.toml\n"
        );
        assert!(
            report(6)
                .to_string()
                .contains("\nstill images: 6 (neutral smile), listed in images.txt\n")
        );
    }
}
