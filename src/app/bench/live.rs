//! `vidapter bench live`: `predict --live` against the clock, with a checkpoint (the demo's)
//! and with a ViT-S/14-sized FE-Adapter at 224 px (random weights): how many frames a
//! second the whole pipeline sustains without dropping one (a file read losslessly), and,
//! on a 25 fps stream sent in real time by the ffmpeg tool to a loopback UDP address, the
//! end-to-end latency, the drops and the model's time per window. The target: the stream's
//! frames all read, at a latency under the window's duration plus 200 ms.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use serde::Serialize;

use crate::app::experiment::Classifier;
use crate::app::live::{LiveRun, LiveSummary, run_live_with};
use crate::backbone::{VisionTransformer, VitConfig};
use crate::data::decode::LiveOptions;
use crate::data::transform::SpatialConfig;
use crate::error::{Error, Result};
use crate::methods::{MethodConfig, VideoClassifier};

/// What to time.
#[derive(Debug, Clone)]
pub struct LiveBench {
    /// A checkpoint to time (the demo's model); the ViT-S/14 model is timed either way.
    pub checkpoint: Option<PathBuf>,
    /// Seconds of each run (the paced stream's length, the lossless run's limit).
    pub seconds: f64,
    /// Frame size of the generated stream.
    pub width: usize,
    /// Frame height of the generated stream.
    pub height: usize,
    /// Frame rate of the stream.
    pub fps: usize,
    /// Skip the ViT-S/14 model.
    pub no_vit_s: bool,
}

/// One model's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LiveBenchRow {
    /// Which model.
    pub model: String,
    /// Frames per clip it classifies.
    pub clip_frames: usize,
    /// Its input size.
    pub size: usize,
    /// Frames a second of the whole pipeline read losslessly from a file (decode, ring,
    /// sampling, model): the fastest source it follows without a drop.
    pub sustained_fps: f64,
    /// The paced stream's run.
    pub paced: LiveSummary,
    /// The latency target: the window's duration plus 200 ms.
    pub target_ms: f64,
    /// Whether the paced run met it: the stream's frames read (at least 97%: the run stops
    /// as the sender ends), none dropped, p95 latency under the target.
    pub meets_target: bool,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct LiveBenchReport {
    /// Stream size and rate.
    pub stream: String,
    /// Frames the paced stream holds.
    pub stream_frames: usize,
    /// Its frame rate.
    pub fps: usize,
    /// Threads the model may use (the machine's cores).
    pub cores: usize,
    /// Per model.
    pub rows: Vec<LiveBenchRow>,
}

impl LiveBenchReport {
    /// A Markdown table and what bounds each model.
    pub fn render(&self) -> String {
        let mut t = format!(
            "predict --live on a {} stream ({} frames, sent in real time over UDP loopback), {} cores\n\n\
             | model | clip | window / stride | model ms per window | lossless frames/s | paced: frames read | windows | dropped | latency mean / p95 | target |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
            self.stream, self.stream_frames, self.cores
        );
        for r in &self.rows {
            let p = &r.paced;
            t.push_str(&format!(
                "| {} | {} x {} px | {} / {} | {:.0} | {:.1} | {} of {} ({} decode errors) | {} | {:.1}% | {:.0} / {:.0} ms | {} {:.0} ms |\n",
                r.model,
                r.clip_frames,
                r.size,
                p.window,
                p.stride,
                p.model_ms_mean,
                r.sustained_fps,
                p.frames,
                self.stream_frames,
                p.decode_errors,
                p.windows,
                p.drop_rate * 100.0,
                p.latency_mean_ms,
                p.latency_p95_ms,
                if r.meets_target { "met, <" } else { "missed, <" },
                r.target_ms
            ));
        }
        for r in &self.rows {
            let p = &r.paced;
            let budget = p.stride as f64 * 1000.0 / self.fps as f64;
            t.push_str(&format!(
                "\n{}: the model takes {:.0} ms per window against {:.0} ms between windows ({:.0}% of the stride's time); {}",
                r.model,
                p.model_ms_mean,
                budget,
                100.0 * p.model_ms_mean / budget,
                if p.model_ms_mean > budget {
                    "the model bounds it: windows are skipped and their frames dropped."
                } else {
                    "the source's pace bounds it."
                }
            ));
        }
        t.push('\n');
        t
    }
}

/// A ViT-S/14 at 224 px (DINOv2-S's shape) with random weights and FE-Adapter, 8 frames,
/// 7 classes (DFEW's).
pub fn vit_s_classifier(device: &Device) -> Result<Classifier> {
    let config = VitConfig::from_hf_str(
        r#"{"model_type":"vit","hidden_size":384,"num_hidden_layers":12,"num_attention_heads":6,"intermediate_size":1536,"image_size":224,"patch_size":14}"#,
        Path::new("<preset vit-small-patch14-224>"),
    )?;
    let mean = config.image_mean;
    let std = config.image_std;
    let backbone = VisionTransformer::random(config, 0, device);
    let method: MethodConfig = toml::from_str("kind = \"fe_adapter\"")
        .map_err(|e| Error::Input(format!("FE-Adapter's defaults: {e}")))?;
    let model = VideoClassifier::new(backbone, &method, 7, 0, device);
    let spatial = SpatialConfig {
        size: 224,
        short_side: 256,
        area: [0.08, 1.0],
        ratio: [0.75, 4.0 / 3.0],
        flip: true,
        mean,
        std,
    };
    let classes = [
        "happy", "sad", "neutral", "angry", "surprise", "disgust", "fear",
    ]
    .map(String::from)
    .to_vec();
    Ok(Classifier::new(model, spatial, 8, classes, device))
}

/// Runs the benchmark.
///
/// # Errors
/// The ffmpeg tool is missing or fails; the checkpoint does not load; a run fails.
pub fn bench_live(opts: &LiveBench, device: &Device) -> Result<LiveBenchReport> {
    let tmp = crate::util::tempdir().map_err(|e| Error::io("a temporary folder", e))?;
    let video = tmp.path().join("stream.ts");
    make_stream(&video, opts)?;
    let mut models: Vec<(String, Classifier)> = Vec::new();
    if let Some(ck) = &opts.checkpoint {
        let (c, _, _) = Classifier::load(ck, device)?;
        models.push((format!("checkpoint {}", ck.display()), c));
    }
    if !opts.no_vit_s {
        models.push((
            "ViT-S/14 FE-Adapter (random)".into(),
            vit_s_classifier(device)?,
        ));
    }
    if models.is_empty() {
        return Err(Error::Input(
            "nothing to time: give --checkpoint, or leave the ViT-S/14 model in".into(),
        ));
    }
    let seconds = Duration::from_secs_f64(opts.seconds);
    let mut rows = Vec::new();
    for (name, classifier) in &models {
        tracing::info!(target: crate::util::PROGRESS, "{name}: lossless from a file");
        let lossless = run_live_with(
            classifier,
            None,
            &LiveRun {
                source: video.display().to_string(),
                duration: Some(seconds),
                ..LiveRun::default()
            },
            Arc::new(AtomicBool::new(false)),
            &mut std::io::sink(),
        )?;
        tracing::info!(target: crate::util::PROGRESS, "{name}: a {} fps stream over UDP", opts.fps);
        let port = free_udp_port()?;
        let url = format!("udp://127.0.0.1:{port}");
        let sender = spawn_sender(&video, &url, port)?;
        let paced = run_live_with(
            classifier,
            None,
            &LiveRun {
                source: url.clone(),
                // The stream's length, less the sender's start-up.
                duration: Some(seconds.saturating_sub(Duration::from_millis(300))),
                reader: LiveOptions {
                    stall: Duration::from_secs(10),
                    ..LiveOptions::default()
                },
                reconnect: 0,
                ..LiveRun::default()
            },
            Arc::new(AtomicBool::new(false)),
            &mut std::io::sink(),
        );
        let sent = finish_sender(sender);
        let paced = paced?;
        sent?;
        let target_ms = paced.window as f64 * 1000.0 / opts.fps as f64 + 200.0;
        let expected = opts.seconds * opts.fps as f64;
        let meets_target = paced.frames as f64 >= 0.97 * expected
            && paced.dropped == 0
            && paced.latency_p95_ms < target_ms;
        rows.push(LiveBenchRow {
            model: name.clone(),
            clip_frames: classifier.frames,
            size: classifier.input_size(),
            sustained_fps: lossless.input_fps,
            paced,
            target_ms,
            meets_target,
        });
    }
    Ok(LiveBenchReport {
        stream: format!("{}x{} {} fps H.264", opts.width, opts.height, opts.fps),
        stream_frames: (opts.seconds * opts.fps as f64) as usize,
        fps: opts.fps,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rows,
    })
}

/// An H.264 MPEG-TS test pattern, as a camera or encoder would stream it (no B-frames,
/// a key frame every two seconds).
fn make_stream(path: &Path, opts: &LiveBench) -> Result<()> {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={}x{}:rate={}:duration={}",
            opts.width, opts.height, opts.fps, opts.seconds
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g",
            &(2 * opts.fps).to_string(),
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mpegts",
        ])
        .arg(path)
        .output()
        .map_err(|e| {
            Error::Input(format!(
                "the ffmpeg tool does not run ({e}); scripts/install-deps.sh installs it"
            ))
        })?;
    if !o.status.success() {
        return Err(Error::Input(format!(
            "the ffmpeg tool could not make the test stream: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(())
}

fn free_udp_port() -> Result<u16> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Input(format!("no free UDP port on loopback: {e}")))
}

/// Starts the ffmpeg tool sending `video` in real time to `url` once something listens on
/// `port` (Linux's `/proc/net/udp`; elsewhere after a second).
fn spawn_sender(
    video: &Path,
    url: &str,
    port: u16,
) -> Result<std::thread::JoinHandle<std::io::Result<Child>>> {
    let video = video.to_path_buf();
    let target = format!("{url}?pkt_size=1316");
    Ok(std::thread::spawn(move || {
        wait_for_listener(port, Duration::from_secs(30));
        Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-i"])
            .arg(&video)
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(&target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }))
}

fn finish_sender(sender: std::thread::JoinHandle<std::io::Result<Child>>) -> Result<()> {
    match sender.join() {
        Ok(Ok(mut child)) => {
            let _ = child.kill();
            let _ = child.wait();
            Ok(())
        }
        Ok(Err(e)) => Err(Error::Input(format!("the ffmpeg tool does not run: {e}"))),
        Err(_) => Err(Error::Input("the sender thread failed".into())),
    }
}

/// Waits until a UDP socket is bound to `port`, or `limit` passes.
pub fn wait_for_listener(port: u16, limit: Duration) {
    let needle = format!(":{port:04X}");
    let t = Instant::now();
    while t.elapsed() < limit {
        match std::fs::read_to_string("/proc/net/udp") {
            Ok(table) => {
                let bound = table
                    .lines()
                    .filter_map(|l| l.split_whitespace().nth(1))
                    .any(|local| local.ends_with(&needle));
                if bound {
                    return;
                }
            }
            Err(_) => {
                std::thread::sleep(Duration::from_secs(1));
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(frames: usize, dropped: usize, model_ms: f64, p95: f64) -> LiveSummary {
        LiveSummary {
            source: "udp://127.0.0.1:5600".into(),
            frames,
            windows: 40,
            dropped,
            drop_rate: dropped as f64 / frames as f64,
            decode_errors: 0,
            reconnects: 0,
            latency_mean_ms: p95 - 5.0,
            latency_p95_ms: p95,
            model_ms_mean: model_ms,
            seconds: 20.0,
            input_fps: frames as f64 / 20.0,
            window: 25,
            stride: 12,
            lossless: false,
            faces: None,
            end: "time limit".into(),
            failed: false,
        }
    }

    #[test]
    fn the_table_says_what_bounds_each_model() {
        let row = |model: &str, paced: LiveSummary, meets: bool| LiveBenchRow {
            model: model.into(),
            clip_frames: 8,
            size: 224,
            sustained_fps: 150.0,
            paced,
            target_ms: 1200.0,
            meets_target: meets,
        };
        let report = LiveBenchReport {
            stream: "640x480 25 fps H.264".into(),
            stream_frames: 500,
            fps: 25,
            cores: 2,
            rows: vec![
                row("small", summary(500, 0, 76.0, 87.0), true),
                row("large", summary(500, 318, 3305.0, 4427.0), false),
            ],
        };
        let t = report.render();
        assert!(t.contains("| small | 8 x 224 px | 25 / 12 | 76 | 150.0 | 500 of 500 (0 decode errors) | 40 | 0.0% | 82 / 87 ms | met, < 1200 ms |"), "{t}");
        assert!(
            t.contains("| 63.6% | 4422 / 4427 ms | missed, < 1200 ms |"),
            "{t}"
        );
        assert!(t.contains("small: the model takes 76 ms per window against 480 ms between windows (16% of the stride's time); the source's pace bounds it."), "{t}");
        assert!(t.contains("large: the model takes 3305 ms per window against 480 ms between windows (689% of the stride's time); the model bounds it"), "{t}");
    }
}
