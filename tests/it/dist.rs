//! Data-parallel training through the built binary on loopback: N ranks at batch B end with
//! the weights of one process at batch N x B (FE-Adapter through the backbone, M-adapter from
//! a feature cache), with the same validation and test metrics; a stopped and resumed
//! two-rank run included; ranks launched by hand with torchrun's variables; a rank that dies
//! stops the others with an error; a rank left alone at the rendezvous times out.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use safetensors::Dtype;

use crate::common::fixtures::{ramp_dataset, run_config};
use crate::common::{read_raw, rel_err, text, vidapter_in};

/// Every f32 tensor of a checkpoint (weights and AdamW moments).
fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    read_raw(path)
        .into_iter()
        .filter(|(_, (d, _, _))| *d == Dtype::F32)
        .map(|(k, (_, _, b))| {
            let v = b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (k, v)
        })
        .collect()
}

fn assert_same_weights(a: &Path, b: &Path, tol: f64) {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(
        ta.iter().map(|t| &t.0).collect::<Vec<_>>(),
        tb.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    assert!(!ta.is_empty());
    for ((k, x), (_, y)) in ta.iter().zip(&tb) {
        let e = rel_err(x, y);
        assert!(e <= tol, "{k}: relative error {e:e} > {tol:e}");
    }
}

fn records(run: &Path, kind: &str, field: &str) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .map(|v| v[field].as_f64().unwrap())
        .collect()
}

fn report(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap()
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", text(o));
}

/// `cfg` with head dropout off (its masks are drawn per rank) and `extra` lines in [train].
fn config(root: &Path, method: &str, extra: &str) -> String {
    let cfg = run_config(root, method);
    let mut t = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("workers = 2\n", &format!("workers = 1\nseed = 7\n{extra}"));
    if method != "fe_adapter" {
        t = t.replace("bottleneck = 4\n", "");
    }
    t = t.replace(
        &format!("kind = \"{method}\"\n"),
        &format!("kind = \"{method}\"\ndropout = 0.0\n"),
    );
    std::fs::write(&cfg, t).unwrap();
    cfg.to_str().unwrap().to_string()
}

#[test]
fn two_ranks_at_batch_b_match_one_process_at_2b_for_fe_adapter() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    // Six clips in global batches of 4: the second gives rank 1 nothing to read, and it
    // still takes part in the update.
    let cfg = config(
        root,
        "fe_adapter",
        "clip_grad_norm = 1.0\nlabel_smoothing = 0.1\n",
    );
    let one = vidapter_in(
        root,
        &[
            "train",
            &cfg,
            "-q",
            "--batch-size",
            "4",
            "--out",
            "runs/one",
        ],
    );
    ok(&one);
    // Two ranks, stopped after the first epoch and resumed.
    let two = [
        "train",
        &cfg,
        "-q",
        "--batch-size",
        "2",
        "--out",
        "runs/two",
    ];
    let o = vidapter_in(
        root,
        &[&two[..], &["--nproc", "2", "--stop-after", "1"]].concat(),
    );
    ok(&o);
    let o = vidapter_in(root, &[&two[..], &["--nproc", "2", "--resume"]].concat());
    ok(&o);
    let (a, b) = (root.join("runs/one"), root.join("runs/two"));
    assert_same_weights(
        &a.join("last.safetensors"),
        &b.join("last.safetensors"),
        1e-5,
    );
    // The same steps, losses, validation and test metrics.
    let (la, lb) = (records(&a, "step", "loss"), records(&b, "step", "loss"));
    assert_eq!(la.len(), 4, "2 epochs of 2 global batches");
    assert_eq!(la.len(), lb.len());
    for (x, y) in la.iter().zip(&lb) {
        assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{la:?} vs {lb:?}");
    }
    assert_eq!(
        records(&a, "epoch", "val_uar"),
        records(&b, "epoch", "val_uar")
    );
    let (ra, rb) = (report(&a), report(&b));
    assert_eq!(ra["test"]["uar"], rb["test"]["uar"]);
    assert_eq!(ra["test"]["war"], rb["test"]["war"]);
    // Rank 0 alone prints the report.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).matches("UAR").count(),
        String::from_utf8_lossy(&one.stdout).matches("UAR").count(),
        "{}",
        text(&o)
    );
}

#[test]
fn two_ranks_from_a_feature_cache_match_one_process_for_m_adapter() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let cfg = config(root, "m_adapter", "");
    let o = vidapter_in(
        root,
        &[
            "extract", "-q", "--config", &cfg, "--out", "cache", "--views", "1", "--dtype", "f32",
        ],
    );
    ok(&o);
    let cached = ["--set", "train.cache=cache"];
    let one = [
        &[
            "train",
            &cfg,
            "-q",
            "--batch-size",
            "2",
            "--out",
            "runs/one",
        ][..],
        &cached,
    ]
    .concat();
    ok(&vidapter_in(root, &one));
    let two = [
        &[
            "train",
            &cfg,
            "-q",
            "--batch-size",
            "1",
            "--out",
            "runs/two",
            "--nproc",
            "2",
        ][..],
        &cached,
    ]
    .concat();
    ok(&vidapter_in(root, &two));
    let (a, b) = (root.join("runs/one"), root.join("runs/two"));
    assert_same_weights(
        &a.join("last.safetensors"),
        &b.join("last.safetensors"),
        1e-5,
    );
    assert_eq!(
        records(&a, "epoch", "val_uar"),
        records(&b, "epoch", "val_uar")
    );
    assert_eq!(report(&a)["test"]["uar"], report(&b)["test"]["uar"]);
}

/// Starts rank `rank` of 2 by hand, with the variables torchrun sets (its agent serves its
/// own store on MASTER_PORT: the caller holds that port).
fn rank(root: &Path, cfg: &str, rank: usize, port: u16, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .current_dir(root)
        .args(["train", cfg, "-q"])
        .args(extra)
        .env("TORCHELASTIC_USE_AGENT_STORE", "True")
        .env("WORLD_SIZE", "2")
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A random port below the ephemeral range, not probed: a probe's socket can be inherited
/// by a process another test thread forks at that moment and hold the port past the probe.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    20_000 + ((nanos ^ std::process::id()) % 6000) as u16 * 2 + k % 2
}

#[test]
fn a_rank_that_dies_stops_the_other_with_an_error() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let cfg = config(root, "linear_probe", "");
    let cfg = {
        let t = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("epochs = 2", "epochs = 400");
        std::fs::write(&cfg, t).unwrap();
        cfg
    };
    let port = free_port();
    // torchrun's agent store, which vidapter must leave alone.
    let _agent = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
    let extra = ["--batch-size", "1", "--set", "train.dist_timeout=600"];
    let mut r0 = rank(root, &cfg, 0, port, &extra);
    let mut r1 = rank(root, &cfg, 1, port, &extra);
    // Killed once training is under way (rank 0 has logged an epoch).
    let log = root.join("runs/linear_probe/metrics.jsonl");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"kind\":\"epoch\"")) {
        assert!(t0.elapsed() < Duration::from_secs(120), "no epoch logged");
        assert!(r0.try_wait().unwrap().is_none(), "rank 0 ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    r1.kill().unwrap();
    r1.wait().unwrap();
    let killed = Instant::now();
    let o = loop {
        if r0.try_wait().unwrap().is_some() {
            break r0.wait_with_output().unwrap();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "rank 0 still running a minute after its peer died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("distributed training") && out.contains("rank 0 of 2"),
        "{out}"
    );
    // The checkpoint rank 0 left is whole.
    let last = root.join("runs/linear_probe/last.safetensors");
    assert!(last.exists(), "{out}");
    assert!(!tensors(&last).is_empty());
}

#[test]
fn a_rank_alone_at_the_rendezvous_times_out_naming_what_to_check() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let cfg = config(root, "fe_adapter", "dist_timeout = 2\n");
    let t0 = Instant::now();
    let o = rank(root, &cfg, 0, free_port(), &[])
        .wait_with_output()
        .unwrap();
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(60), "{out}");
    assert!(out.contains("did every rank start"), "{out}");
    // Neither a bad variable, nor --nproc under a launcher, nor kfold under one.
    for (args, rank, expected) in [
        (&["train", &cfg, "-q"][..], "x", "RANK=\"x\""),
        (&["train", &cfg, "-q", "--nproc", "2"][..], "0", "--nproc"),
        (
            &["kfold", &cfg, "-q"][..],
            "0",
            "launch `vidapter train` per fold",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_vidapter"))
            .current_dir(root)
            .args(args)
            .env("WORLD_SIZE", "2")
            .env("RANK", rank)
            .env("MASTER_ADDR", "127.0.0.1")
            .output()
            .unwrap();
        assert!(
            !o.status.success() && text(&o).contains(expected),
            "{}",
            text(&o)
        );
    }
}
