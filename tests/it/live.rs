//! `predict --live` end to end through the built binary, on loopback only and bounded in
//! time: a file, a FIFO fed by a writer, a UDP MPEG-TS stream sent by the ffmpeg tool in
//! real time (then killed: reconnect attempts and a clear end), SIGINT, and a refused
//! address. Each live run's windows must equal `predict --timeline` on the same frames.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::common::fixtures::{ramp_dataset, run_config};
use super::common::{text, vidapter};
use vidapter::app::bench::live::wait_for_listener;

/// A checkpoint trained once for these tests (the tiny ViT, FE-Adapter, 2 classes).
fn checkpoint() -> &'static Path {
    static DIR: OnceLock<(vidapter::util::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let tmp = vidapter::util::tempdir().unwrap();
        ramp_dataset(tmp.path());
        let cfg = run_config(tmp.path(), "fe_adapter");
        let o = vidapter(&["train", cfg.to_str().unwrap(), "-q"]);
        assert!(o.status.success(), "{}", text(&o));
        let best = tmp.path().join("runs/fe_adapter/best.safetensors");
        (tmp, best)
    })
    .1
}

/// A 64x48 MPEG-TS test pattern of `seconds` at 25 fps.
fn stream_file(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join(format!("pattern{seconds}.ts"));
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=64x48:rate=25:duration={seconds}"))
        .args([
            "-c:v",
            "mpeg2video",
            "-q:v",
            "3",
            "-g",
            "12",
            "-f",
            "mpegts",
        ])
        .arg(&path)
        .status()
        .expect("the ffmpeg tool runs (scripts/install-deps.sh installs it)");
    assert!(ok.success());
    path
}

/// `predict --timeline 8 --stride 4` on `video`: window start -> probabilities by class.
fn offline(video: &Path) -> BTreeMap<usize, BTreeMap<String, f64>> {
    let ck = checkpoint().to_str().unwrap();
    let o = vidapter(&[
        "predict",
        "--checkpoint",
        ck,
        video.to_str().unwrap(),
        "--timeline",
        "8",
        "--stride",
        "4",
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let classes: Vec<String> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    v["predictions"][0]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let probs = w["probs"].as_array().unwrap().iter();
            let by_class = classes
                .iter()
                .cloned()
                .zip(probs.map(|p| p.as_f64().unwrap()))
                .collect();
            (w["start"].as_u64().unwrap() as usize, by_class)
        })
        .collect()
}

/// The JSON-lines records of a live run: window start -> probabilities by class.
fn records(stdout: &[u8]) -> Vec<(usize, usize, BTreeMap<String, f64>, serde_json::Value)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).expect("one JSON record a line");
            let by_class = r["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["class"].as_str().unwrap().to_string(),
                        c["p"].as_f64().unwrap(),
                    )
                })
                .collect();
            let start = r["start"].as_u64().unwrap() as usize;
            let end = r["end"].as_u64().unwrap() as usize;
            (start, end, by_class, r)
        })
        .collect()
}

fn live_args<'a>(source: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "predict",
        "--checkpoint",
        checkpoint().to_str().unwrap(),
        "--live",
        source,
        "--timeline",
        "8",
        "--stride",
        "4",
        "--top-k",
        "2",
        "-q",
    ];
    a.extend_from_slice(extra);
    a
}

fn spawn_live(source: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(live_args(source, extra))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

/// Every live window equals the offline window with the same start (6 decimals).
fn assert_same_windows(
    live: &[(usize, usize, BTreeMap<String, f64>, serde_json::Value)],
    offline: &BTreeMap<usize, BTreeMap<String, f64>>,
) {
    for (start, end, probs, r) in live {
        assert_eq!(end - start, 8, "{r}");
        let want = offline
            .get(start)
            .unwrap_or_else(|| panic!("no offline window starts at {start}: {r}"));
        for (class, p) in probs {
            assert!((p - want[class]).abs() < 2e-6, "{r} against {want:?}");
        }
    }
}

/// The ffmpeg tool sending `ts` as MPEG-TS to `target` (a FIFO or a URL) at its own
/// frame rate, as a live source would.
fn real_time_sender(ts: &Path, target: &str) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-y", "-re", "-i"])
        .arg(ts)
        .args(["-c", "copy", "-f", "mpegts", target]);
    c
}

/// Waits (at most 60 s) until a socket is bound to the port of `url`.
fn wait_for_udp_listener(url: &str) {
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    wait_for_listener(port, Duration::from_secs(60));
}

/// A free UDP port on loopback.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_file_and_a_fifo_give_the_offline_timeline_window_for_window() {
    let tmp = vidapter::util::tempdir().unwrap();
    let ts = stream_file(tmp.path(), 2);
    let want = offline(&ts);
    // 50 frames, windows of 8 every 4: starts 0, 4, ..., 40 and the flush window 42.
    assert_eq!(want.len(), 12, "{want:?}");

    let o = vidapter(&live_args(ts.to_str().unwrap(), &[]));
    assert!(o.status.success(), "{}", text(&o));
    let got = records(&o.stdout);
    assert_eq!(got.len(), want.len(), "{}", text(&o));
    assert_same_windows(&got, &want);
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(summary.contains("50 frames"), "{summary}");
    assert!(summary.contains("0 frames dropped"), "{summary}");
    assert!(summary.contains("end of stream"), "{summary}");
    // The stream's timestamps: MPEG-TS starts at 1.4 s; windows are 4 frames (0.16 s) apart.
    let pts: Vec<f64> = got.iter().map(|r| r.3["pts"].as_f64().unwrap()).collect();
    assert!((pts[1] - pts[0] - 0.16).abs() < 1e-3, "{pts:?}");

    // Standard input (`-`), held back (--lossless): the same windows.
    let o = Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(live_args("-", &["--lossless"]))
        .stdin(std::fs::File::open(&ts).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let got = records(&o.stdout);
    assert_eq!(got.len(), want.len(), "{}", text(&o));
    assert_same_windows(&got, &want);
    assert!(String::from_utf8_lossy(&o.stderr).contains("live standard input: 50 frames"));

    // A FIFO fed by a writer that starts after the reader: the same windows.
    let fifo = tmp.path().join("feed");
    let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success());
    let summary_json = tmp.path().join("summary.json");
    let live = spawn_live(
        fifo.to_str().unwrap(),
        &[
            "--format",
            "csv",
            "--summary",
            summary_json.to_str().unwrap(),
        ],
    );
    let mut writer = real_time_sender(&ts, fifo.to_str().unwrap())
        .spawn()
        .unwrap();
    let o = live.wait_with_output().unwrap();
    assert!(writer.wait().unwrap().success());
    assert!(o.status.success(), "{}", text(&o));
    let csv = String::from_utf8_lossy(&o.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("window,face,start,end,pts,latency_ms,dropped,class1,p1,class2,p2")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), want.len(), "{csv}");
    for row in &rows {
        assert_eq!(row[1], "", "no face column without --faces: {row:?}");
        let start: usize = row[2].parse().unwrap();
        for c in [7, 9] {
            let p: f64 = row[c + 1].parse().unwrap();
            assert!((p - want[&start][row[c]]).abs() < 2e-6, "{row:?}");
        }
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_json).unwrap()).unwrap();
    assert_eq!(s["windows"], 12, "{s}");
    assert_eq!(s["frames"], 50, "{s}");
    assert_eq!(s["failed"], false, "{s}");
    assert!(s["latency_p95_ms"].as_f64().unwrap() > 0.0, "{s}");
    assert_eq!(s["lossless"], true, "a FIFO is read as a file: {s}");
}

#[test]
fn a_udp_stream_is_classified_live_then_reconnected_then_given_up() {
    let tmp = vidapter::util::tempdir().unwrap();
    let ts = stream_file(tmp.path(), 3);
    let want = offline(&ts);
    let url = format!("udp://127.0.0.1:{}", free_port());
    let t0 = Instant::now();
    let live = spawn_live(&url, &["--stall-timeout", "3", "--reconnect", "1"]);
    // The sender starts once the receiver listens, so that no frame is lost before it.
    wait_for_udp_listener(&url);
    let sender = real_time_sender(&ts, &format!("{url}?pkt_size=1316"))
        .status()
        .unwrap();
    assert!(sender.success());
    let o = live.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // The sender is gone: the stream stalls, the reconnect attempt fails, a clear end.
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        err.contains("reconnecting in 0.5 s (attempt 1 of 1)"),
        "{err}"
    );
    assert!(
        err.contains("gave up after 1 reconnect attempt(s)"),
        "{err}"
    );
    assert!(err.contains(&url), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30));
    // What was classified while it ran equals the offline timeline on the same frames.
    let got = records(&o.stdout);
    assert!(got.len() >= want.len() / 2, "{}", text(&o));
    assert_same_windows(&got, &want);
}

#[test]
fn sigint_ends_a_live_run_cleanly_with_its_summary() {
    let tmp = vidapter::util::tempdir().unwrap();
    let ts = stream_file(tmp.path(), 20);
    let url = format!("udp://127.0.0.1:{}", free_port());
    let mut live = spawn_live(&url, &[]);
    wait_for_udp_listener(&url);
    let mut sender = real_time_sender(&ts, &format!("{url}?pkt_size=1316"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let ok = Command::new("kill")
        .args(["-INT", &live.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = live.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "SIGINT did not end the run"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = sender.kill();
    let _ = sender.wait();
    let o = live.wait_with_output().unwrap();
    assert!(status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("; interrupted"), "{err}");
    assert!(!records(&o.stdout).is_empty(), "{}", text(&o));
}

#[test]
fn a_refused_address_and_a_missing_device_are_named() {
    let o = vidapter(&live_args("tcp://127.0.0.1:9", &["--stall-timeout", "2"]));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("tcp://127.0.0.1:9"), "{err}");
    // A live-only option with files is refused, not ignored.
    let o = vidapter(&["predict", "--checkpoint", "x", "a.mp4", "--top-k", "2"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--top-k goes with --live SOURCE"),
        "{}",
        text(&o)
    );
    let o = vidapter(&live_args("/dev/video97", &[]));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/dev/video97") && err.contains("no such device"),
        "{err}"
    );
}

#[test]
fn live_faces_give_one_record_per_face_and_window() {
    let face = super::common::faces::media("single_face.mp4");
    let detector = super::common::faces::detector();
    let detector = detector.to_str().unwrap();
    // A file is read losslessly: every frame detected, tracked and aligned.
    let o = vidapter(&live_args(
        face.to_str().unwrap(),
        &["--faces", "--detector", detector],
    ));
    assert!(o.status.success(), "{}", text(&o));
    let got = records(&o.stdout);
    // 72 frames, one face from the first frame: windows [0, 8), [4, 12), ... [64, 72).
    assert_eq!(got.len(), 17, "{}", text(&o));
    for (i, (start, end, probs, r)) in got.iter().enumerate() {
        assert_eq!(r["face"], 0, "{r}");
        assert_eq!((*start, *end), (4 * i, 4 * i + 8), "{r}");
        assert_eq!(r["dropped"], 0, "{r}");
        let sum: f64 = probs.values().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{r}");
    }
    // No face: no record, a clean end that says so.
    let none = super::common::faces::media("no_face.mp4");
    let o = vidapter(&live_args(
        none.to_str().unwrap(),
        &["--faces", "--detector", detector],
    ));
    assert!(o.status.success(), "{}", text(&o));
    assert!(o.stdout.is_empty(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("0 windows") && err.contains("no face"),
        "{err}"
    );
}

#[test]
fn bench_live_reports_a_checkpoint_against_a_paced_stream() {
    let o = vidapter(&[
        "bench",
        "live",
        "--checkpoint",
        checkpoint().to_str().unwrap(),
        "--no-vit-s",
        "--seconds",
        "2",
        "--size",
        "64x48",
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("64x48 25 fps H.264 stream (50 frames"),
        "{out}"
    );
    assert!(out.contains("| checkpoint "), "{out}");
    assert!(out.contains(" of 50 ("), "{out}");
    assert!(
        out.contains("per window against 480 ms between windows"),
        "{out}"
    );
}
