//! `vidapter train --nproc N`: N local ranks, launched as torchrun would launch them.
//!
//! The launcher runs this same executable N times with the command line it was given minus
//! `--nproc`, with torchrun's variables (`WORLD_SIZE`, `RANK`, `LOCAL_RANK`,
//! `LOCAL_WORLD_SIZE`, `MASTER_ADDR=127.0.0.1`, a free `MASTER_PORT`) and, unless set, an
//! equal share of the cores in `RAYON_NUM_THREADS`. It waits for them; when one fails, the
//! others are given a few seconds to stop on their own (their collectives fail as soon as the
//! peer's connections close) and are then killed, and the launcher exits with the failed
//! rank's status. Checkpoints are written atomically, so a kill leaves none torn.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The command line without `--nproc N` / `--nproc=N`.
pub fn strip_nproc(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a == "--nproc" {
            skip = true;
            continue;
        }
        if a.starts_with("--nproc=") {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// A port that is free now, below Linux's ephemeral range (32768-60999), so that the
/// outgoing connections of other programs (which take ports from that range) cannot take it
/// between this choice and rank 0's bind.
pub fn free_port() -> Result<u16> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..200u32 {
        let port = 20_000 + (seed.wrapping_add(i.wrapping_mul(7919)) % 12_000) as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(Error::Distributed(
        "no free port in 20000-31999 for the rendezvous; set MASTER_PORT".into(),
    ))
}

/// Runs `args` (this executable's arguments, without the program name) as `nproc` local
/// ranks and returns the exit code the launcher should exit with: 0 when every rank
/// succeeded, else the first failed rank's code.
///
/// # Errors
/// This executable cannot be found or started.
pub fn run_local(nproc: usize, args: &[String]) -> Result<i32> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Distributed(format!("cannot find this executable: {e}")))?;
    let args = strip_nproc(args);
    let port = match std::env::var("MASTER_PORT") {
        Ok(p) => p,
        Err(_) => free_port()?.to_string(),
    };
    let threads = std::env::var("RAYON_NUM_THREADS").ok().unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        (cores / nproc).max(1).to_string()
    });
    tracing::info!(
        target: crate::util::PROGRESS,
        "launching {nproc} ranks on this machine (rendezvous 127.0.0.1:{port}, {threads} thread(s) each)"
    );
    let mut children: Vec<(usize, Child)> = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let child = Command::new(&exe)
            .args(&args)
            .env("WORLD_SIZE", nproc.to_string())
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .env("RAYON_NUM_THREADS", &threads)
            .spawn();
        match child {
            Ok(c) => children.push((rank, c)),
            Err(e) => {
                for (_, c) in &mut children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(Error::Distributed(format!(
                    "cannot start rank {rank} ({}): {e}",
                    exe.display()
                )));
            }
        }
    }
    Ok(wait_all(children, Duration::from_secs(10)))
}

fn code(status: ExitStatus) -> i32 {
    status.code().unwrap_or(1).max(1)
}

/// Waits for every child; after the first failure, the rest get `grace` to end, then are
/// killed.
fn wait_all(mut children: Vec<(usize, Child)>, grace: Duration) -> i32 {
    let mut failed: Option<(usize, i32, Instant)> = None;
    while !children.is_empty() {
        let mut i = 0;
        while i < children.len() {
            match children[i].1.try_wait() {
                Ok(Some(status)) => {
                    let (rank, _) = children.swap_remove(i);
                    if !status.success() && failed.is_none() {
                        tracing::error!(
                            target: crate::util::PROGRESS,
                            "rank {rank} failed ({status}); stopping the other ranks"
                        );
                        failed = Some((rank, code(status), Instant::now()));
                    }
                }
                Ok(None) => i += 1,
                Err(_) => {
                    children.swap_remove(i);
                }
            }
        }
        if let Some((_, _, since)) = failed
            && since.elapsed() > grace
        {
            for (rank, c) in &mut children {
                tracing::warn!(target: crate::util::PROGRESS, "killing rank {rank}");
                let _ = c.kill();
                let _ = c.wait();
            }
            children.clear();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    failed.map_or(0, |(_, c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nproc_is_taken_out_of_the_command_line() {
        let a: Vec<String> = [
            "train",
            "c.toml",
            "--nproc",
            "2",
            "--epochs",
            "1",
            "--nproc=3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(strip_nproc(&a), ["train", "c.toml", "--epochs", "1"]);
    }

    #[test]
    fn a_failed_child_stops_the_others_and_gives_its_code() {
        let sleeper = Command::new("sleep").arg("60").spawn().unwrap();
        let failing = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let t0 = Instant::now();
        let code = wait_all(vec![(0, sleeper), (1, failing)], Duration::from_millis(200));
        assert_eq!(code, 3);
        assert!(t0.elapsed() < Duration::from_secs(10));
        let ok = Command::new("true").spawn().unwrap();
        assert_eq!(wait_all(vec![(0, ok)], Duration::from_millis(200)), 0);
    }
}
