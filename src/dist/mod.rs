//! Data-parallel training across processes and machines.
//!
//! A run is launched as N processes ("ranks") the way clusters launch PyTorch jobs: under
//! `torchrun --no-python` (or any launcher with its contract: `WORLD_SIZE`, `RANK`,
//! `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), under Slurm's `srun` (`SLURM_PROCID`,
//! `SLURM_NTASKS`, `SLURM_LOCALID`, with the rendezvous address from `MASTER_ADDR` /
//! `MASTER_PORT` or `[train] rendezvous`), or by `vidapter train --nproc N`, which spawns N
//! local ranks with torchrun's variables ([`launch`]).
//!
//! The ranks meet at a rendezvous store that rank 0 serves on `MASTER_ADDR:MASTER_PORT`
//! ([`store`], what PyTorch's `TCPStore` is to it), then connect a full mesh of TCP pairs
//! and all-reduce through **Gloo**, the collective library PyTorch's CPU backend uses
//! ([`Group`], over the C glue in `gloo.cc`). Gradients live on the compute device; the
//! adapters' are small (kilobytes to a few megabytes), so they are all-reduced through host
//! memory on CPUs and GPUs alike.

pub mod launch;
pub mod store;

mod gloo;
pub use gloo::Group;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use crate::error::{Error, Result};

/// Where this process stands in a data-parallel run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    /// This process's rank, `0..size`.
    pub rank: usize,
    /// Number of processes.
    pub size: usize,
    /// Rank among the processes of this machine (for choosing a GPU).
    pub local_rank: usize,
    /// The rendezvous address, `host:port`: rank 0 serves the store there.
    pub master: String,
    /// Which launcher's variables it came from (for messages).
    pub launcher: Launcher,
    /// torchrun's agent already serves its own store on `master`
    /// (`TORCHELASTIC_USE_AGENT_STORE=True`): vidapter's rendezvous takes the next port.
    pub agent_store: bool,
}

/// The contract a [`World`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// `WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT` (torchrun,
    /// Kubernetes PyTorchJob, Lightning-style launchers, `vidapter train --nproc`).
    Torchrun,
    /// `SLURM_PROCID`, `SLURM_NTASKS` (or `SLURM_STEP_NUM_TASKS`), `SLURM_LOCALID`.
    Slurm,
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.launcher {
            Launcher::Torchrun => "torchrun variables",
            Launcher::Slurm => "Slurm variables",
        };
        write!(
            f,
            "rank {} of {} (local rank {}, rendezvous {}, from {how})",
            self.rank, self.size, self.local_rank, self.master
        )
    }
}

/// The default rendezvous port (torchrun's).
pub const DEFAULT_PORT: u16 = 29500;

impl World {
    /// Reads the launcher's variables from the environment: torchrun's when `WORLD_SIZE` is
    /// set, else Slurm's when `SLURM_PROCID` is set and the step has more than one task; a
    /// world of one is `None` (an ordinary single-process run). `rendezvous` (`host:port`,
    /// from `[train] rendezvous`) is used when `MASTER_ADDR` is not set.
    ///
    /// # Errors
    /// A variable that is missing or not a number, a rank outside the world, or no
    /// rendezvous address; the message names the variable.
    pub fn from_env(rendezvous: Option<&str>) -> Result<Option<World>> {
        Self::from_vars(|k| std::env::var(k).ok(), rendezvous)
    }

    /// [`World::from_env`] over any variable lookup (tests).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        rendezvous: Option<&str>,
    ) -> Result<Option<World>> {
        let num = |name: &str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                    Error::Distributed(format!("{name}={v:?} is not a non-negative whole number"))
                }),
            }
        };
        let need = |name: &str, launcher: &str| -> Result<usize> {
            num(name)?.ok_or_else(|| {
                Error::Distributed(format!(
                    "{name} is not set, but {launcher} is: set both (a launcher sets them together)"
                ))
            })
        };
        let (size, rank, local_rank, launcher) = if let Some(size) = num("WORLD_SIZE")? {
            let rank = need("RANK", "WORLD_SIZE")?;
            let local = num("LOCAL_RANK")?.unwrap_or(rank);
            (size, rank, local, Launcher::Torchrun)
        } else if let Some(rank) = num("SLURM_PROCID")? {
            let size = match num("SLURM_STEP_NUM_TASKS")? {
                Some(n) => n,
                None => need("SLURM_NTASKS", "SLURM_PROCID")?,
            };
            let local = num("SLURM_LOCALID")?.unwrap_or(0);
            (size, rank, local, Launcher::Slurm)
        } else {
            return Ok(None);
        };
        if size == 0 || rank >= size {
            return Err(Error::Distributed(format!(
                "rank {rank} is not within a world of {size} process(es) ({})",
                match launcher {
                    Launcher::Torchrun => "RANK, WORLD_SIZE",
                    Launcher::Slurm => "SLURM_PROCID, SLURM_NTASKS",
                }
            )));
        }
        if size == 1 {
            return Ok(None);
        }
        let master = match (var("MASTER_ADDR"), rendezvous) {
            (Some(addr), _) => {
                let port = match var("MASTER_PORT") {
                    None => DEFAULT_PORT,
                    Some(p) => p.trim().parse::<u16>().map_err(|_| {
                        Error::Distributed(format!("MASTER_PORT={p:?} is not a port number"))
                    })?,
                };
                format!("{}:{port}", addr.trim())
            }
            (None, Some(r)) => {
                let r = r.trim();
                if r.rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                {
                    r.to_string()
                } else {
                    format!("{r}:{DEFAULT_PORT}")
                }
            }
            (None, None) => {
                return Err(Error::Distributed(format!(
                    "{size} processes were launched (rank {rank}), but no rendezvous address is \
                     set: export MASTER_ADDR (rank 0's host) and MASTER_PORT (default \
                     {DEFAULT_PORT}), or set [train] rendezvous = \"host:port\""
                )));
            }
        };
        let agent_store = launcher == Launcher::Torchrun
            && var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True");
        Ok(Some(World {
            rank,
            size,
            local_rank,
            master,
            launcher,
            agent_store,
        }))
    }

    /// Where rank 0 serves vidapter's rendezvous store: `master`, or the port after it when
    /// torchrun's agent holds `master` (its own store, which PyTorch ranks share).
    ///
    /// # Errors
    /// A host name that does not resolve.
    pub fn store_addr(&self) -> Result<SocketAddr> {
        let mut addr = self.master_addr()?;
        if self.agent_store {
            addr.set_port(addr.port().checked_add(1).ok_or_else(|| {
                Error::Distributed(format!(
                    "torchrun's agent holds port {} of {}, and there is no port after it for vidapter's rendezvous",
                    addr.port(),
                    self.master
                ))
            })?);
        }
        Ok(addr)
    }

    /// The rendezvous address resolved (the first address `master` names).
    ///
    /// # Errors
    /// A host name that does not resolve.
    pub fn master_addr(&self) -> Result<SocketAddr> {
        self.master
            .to_socket_addrs()
            .map_err(|e| {
                Error::Distributed(format!(
                    "rendezvous address {:?} does not resolve: {e}",
                    self.master
                ))
            })?
            .next()
            .ok_or_else(|| {
                Error::Distributed(format!(
                    "rendezvous address {:?} names no address",
                    self.master
                ))
            })
    }

    /// The address other ranks reach this one at: the local address of the route to the
    /// rendezvous host (no packet is sent), loopback when the run is on one machine.
    ///
    /// # Errors
    /// No route to the rendezvous host.
    pub fn own_host(&self) -> Result<IpAddr> {
        let master = self.master_addr()?;
        if master.ip().is_loopback() {
            return Ok(master.ip());
        }
        let bind = if master.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let route = UdpSocket::bind(bind)
            .and_then(|s| s.connect(master).and_then(|()| s.local_addr()))
            .map_err(|e| {
                Error::Distributed(format!(
                    "no route from this machine to the rendezvous host {master}: {e}"
                ))
            })?;
        Ok(route.ip())
    }
}

/// How long a rank waits for the others, at the rendezvous and in each collective, before it
/// stops with an error: `[train] dist_timeout` seconds.
pub fn timeout(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds.clamp(1.0, 86_400.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn world(vars: &[(&str, &str)], rendezvous: Option<&str>) -> Result<Option<World>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        World::from_vars(|k| map.get(k).cloned(), rendezvous)
    }

    #[test]
    fn torchrun_variables_make_a_world() {
        let w = world(
            &[
                ("WORLD_SIZE", "4"),
                ("RANK", "2"),
                ("LOCAL_RANK", "0"),
                ("MASTER_ADDR", "node1"),
                ("MASTER_PORT", "1234"),
            ],
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!((w.rank, w.size, w.local_rank), (2, 4, 0));
        assert_eq!(w.master, "node1:1234");
        assert_eq!(w.launcher, Launcher::Torchrun);
        assert!(!w.agent_store);
    }

    #[test]
    fn under_torchrun_s_agent_store_the_rendezvous_takes_the_next_port() {
        let vars = [
            ("WORLD_SIZE", "2"),
            ("RANK", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ];
        let w = world(&vars, None).unwrap().unwrap();
        assert!(w.agent_store);
        assert_eq!(w.store_addr().unwrap().port(), 29501);
        let w = world(&vars[..4], None).unwrap().unwrap();
        assert_eq!(w.store_addr().unwrap().port(), 29500);
    }

    #[test]
    fn slurm_variables_take_the_rendezvous_from_the_config() {
        let vars = [
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
        ];
        let w = world(&vars, Some("head:4000")).unwrap().unwrap();
        assert_eq!((w.rank, w.size, w.local_rank), (3, 8, 1));
        assert_eq!(w.master, "head:4000");
        assert_eq!(
            world(&vars, Some("head")).unwrap().unwrap().master,
            "head:29500"
        );
        let err = world(&vars, None).unwrap_err().to_string();
        assert!(err.contains("MASTER_ADDR"), "{err}");
    }

    #[test]
    fn one_process_or_no_launcher_is_not_distributed() {
        assert_eq!(world(&[], None).unwrap(), None);
        assert_eq!(
            world(&[("WORLD_SIZE", "1"), ("RANK", "0")], None).unwrap(),
            None
        );
        assert_eq!(
            world(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")], None).unwrap(),
            None
        );
    }

    #[test]
    fn bad_variables_are_named() {
        let e = world(&[("WORLD_SIZE", "two"), ("RANK", "0")], None).unwrap_err();
        assert!(e.to_string().contains("WORLD_SIZE=\"two\""), "{e}");
        let e = world(&[("WORLD_SIZE", "2")], None).unwrap_err();
        assert!(e.to_string().contains("RANK is not set"), "{e}");
        let e = world(
            &[("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_ADDR", "h")],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("rank 2 is not within"), "{e}");
        let e = world(
            &[
                ("WORLD_SIZE", "2"),
                ("RANK", "0"),
                ("MASTER_ADDR", "h"),
                ("MASTER_PORT", "70000"),
            ],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("MASTER_PORT=\"70000\""), "{e}");
    }
}
