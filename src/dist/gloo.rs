//! [`Group`]: a Gloo context (full mesh of TCP pairs) and the collectives training needs,
//! over the C functions of `gloo.cc`.

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_void};
use std::sync::Mutex;
use std::time::Duration;

use super::World;
use super::store::{self, Client};
use crate::error::{Error, Result};

#[repr(C)]
struct VgGroup {
    _private: [u8; 0],
}

type PushFn = unsafe extern "C" fn(out: *mut c_void, data: *const c_char, len: usize);

#[repr(C)]
struct VgStore {
    user: *mut c_void,
    set: unsafe extern "C" fn(
        user: *mut c_void,
        key: *const c_char,
        data: *const c_char,
        len: usize,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int,
    get: unsafe extern "C" fn(
        user: *mut c_void,
        key: *const c_char,
        out: *mut c_void,
        push: PushFn,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int,
}

unsafe extern "C" {
    fn vg_connect(
        rank: c_int,
        size: c_int,
        hostname: *const c_char,
        iface: *const c_char,
        store: VgStore,
        timeout_ms: c_long,
        err: *mut c_char,
        errlen: usize,
    ) -> *mut VgGroup;
    fn vg_allreduce_sum_f32(
        g: *mut VgGroup,
        data: *mut f32,
        n: usize,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn vg_barrier(g: *mut VgGroup, err: *mut c_char, errlen: usize) -> c_int;
    fn vg_free(g: *mut VgGroup);
}

/// Copies `msg` into the C buffer `err` of `errlen` bytes, NUL-terminated.
///
/// # Safety
/// `err` points to `errlen` writable bytes.
unsafe fn write_err(msg: &str, err: *mut c_char, errlen: usize) {
    if errlen == 0 {
        return;
    }
    let n = msg.len().min(errlen - 1);
    // SAFETY: the caller guarantees `errlen` bytes at `err`; `n < errlen`.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), err.cast::<u8>(), n);
        *err.add(n) = 0;
    }
}

unsafe extern "C" fn store_set(
    user: *mut c_void,
    key: *const c_char,
    data: *const c_char,
    len: usize,
    err: *mut c_char,
    errlen: usize,
) -> c_int {
    // SAFETY: `user` is the `Client` `Group::connect` passed, alive for the call; `key` is a
    // NUL-terminated string and `data` holds `len` bytes (gloo.cc's CallbackStore).
    let (client, key, data) = unsafe {
        (
            &mut *user.cast::<Client>(),
            CStr::from_ptr(key).to_string_lossy(),
            if len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(data.cast::<u8>(), len)
            },
        )
    };
    match client.set(&key, data) {
        Ok(()) => 0,
        Err(e) => {
            // SAFETY: gloo.cc passes a buffer of `errlen` bytes.
            unsafe { write_err(&e.to_string(), err, errlen) };
            1
        }
    }
}

unsafe extern "C" fn store_get(
    user: *mut c_void,
    key: *const c_char,
    out: *mut c_void,
    push: PushFn,
    err: *mut c_char,
    errlen: usize,
) -> c_int {
    // SAFETY: as in `store_set`.
    let (client, key) = unsafe {
        (
            &mut *user.cast::<Client>(),
            CStr::from_ptr(key).to_string_lossy(),
        )
    };
    match client.get(&key) {
        Ok(v) => {
            // SAFETY: `push` appends `v.len()` bytes from `v` to the vector `out`.
            unsafe { push(out, v.as_ptr().cast::<c_char>(), v.len()) };
            0
        }
        Err(e) => {
            // SAFETY: gloo.cc passes a buffer of `errlen` bytes.
            unsafe { write_err(&e.to_string(), err, errlen) };
            1
        }
    }
}

/// The ranks of one data-parallel run, connected through Gloo.
pub struct Group {
    ptr: Mutex<*mut VgGroup>,
    /// This process's place in the run.
    pub world: World,
    timeout: Duration,
}

// SAFETY: the Gloo context is only used under the mutex, one collective at a time.
unsafe impl Send for Group {}
// SAFETY: as above.
unsafe impl Sync for Group {}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Group({})", self.world)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut().unwrap_or_else(|p| p.into_inner());
        if !p.is_null() {
            // SAFETY: `p` came from `vg_connect` and is freed once.
            unsafe { vg_free(p) };
        }
    }
}

fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Distributed(format!("{what} {s:?} contains a NUL byte")))
}

impl Group {
    /// Joins the run `world`: rank 0 serves the rendezvous store, every rank publishes its
    /// Gloo address there and connects to every other; each rank waits at most `timeout` for
    /// the others, here and in every later collective. The network interface is
    /// `GLOO_SOCKET_IFNAME` when set (as for PyTorch), else the one that routes to the
    /// rendezvous host.
    ///
    /// # Errors
    /// The rendezvous port is taken, a rank did not arrive in time, or Gloo could not
    /// connect; the message says which.
    pub fn connect(world: World, timeout: Duration) -> Result<Group> {
        let addr = world.store_addr()?;
        if world.rank == 0 {
            store::serve(addr.port())?;
        }
        let mut client = Client::connect(&world.master, addr, timeout)?;
        let host = world.own_host()?.to_string();
        let iface = std::env::var("GLOO_SOCKET_IFNAME").unwrap_or_default();
        let host_c = c_string("host", &host)?;
        let iface_c = c_string("GLOO_SOCKET_IFNAME", &iface)?;
        let store = VgStore {
            user: (&raw mut client).cast::<c_void>(),
            set: store_set,
            get: store_get,
        };
        let mut err = vec![0 as c_char; 1024];
        let (rank, size) = (
            c_int::try_from(world.rank).unwrap_or(c_int::MAX),
            c_int::try_from(world.size).unwrap_or(c_int::MAX),
        );
        // SAFETY: the strings and `client` outlive the call; `err` holds 1024 bytes.
        let ptr = unsafe {
            vg_connect(
                rank,
                size,
                host_c.as_ptr(),
                iface_c.as_ptr(),
                store,
                c_long::try_from(timeout.as_millis()).unwrap_or(c_long::MAX),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if ptr.is_null() {
            // SAFETY: gloo.cc wrote a NUL-terminated message.
            let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
            return Err(Error::Distributed(format!(
                "{world}: connecting the ranks failed: {msg}"
            )));
        }
        Ok(Group {
            ptr: Mutex::new(ptr),
            world,
            timeout,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.world.rank
    }

    /// Number of processes.
    pub fn size(&self) -> usize {
        self.world.size
    }

    fn failed(&self, what: &str, msg: &str) -> Error {
        Error::Distributed(format!(
            "rank {} of {}: {what} failed: {msg}. A peer stopped (see its own error) or did not \
             answer within {:.0} s ([train] dist_timeout)",
            self.world.rank,
            self.world.size,
            self.timeout.as_secs_f64()
        ))
    }

    /// Sums `data` element-wise over all ranks, in place; every rank ends with the same
    /// values (Gloo's ring all-reduce reduces each chunk once and copies it to every rank).
    /// `what` names the data in an error.
    ///
    /// # Errors
    /// A peer closed its connection or did not answer within the timeout.
    pub fn all_reduce_sum(&self, data: &mut [f32], what: &str) -> Result<()> {
        let p = *self.ptr.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = vec![0 as c_char; 1024];
        // SAFETY: `p` is live; `data` is a valid mutable slice; `err` holds 1024 bytes.
        let rc = unsafe {
            vg_allreduce_sum_f32(
                p,
                data.as_mut_ptr(),
                data.len(),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc != 0 {
            // SAFETY: gloo.cc wrote a NUL-terminated message.
            let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
            return Err(self.failed(&format!("all-reduce of {what}"), &msg));
        }
        Ok(())
    }

    /// Every rank's `values` (the same length on each), rank by rank: an all-reduce of a
    /// zero-filled buffer in which each rank writes its own slot (adding zeros is exact).
    ///
    /// # Errors
    /// As [`Group::all_reduce_sum`].
    pub fn all_gather(&self, values: &[f32], what: &str) -> Result<Vec<Vec<f32>>> {
        let n = values.len();
        let mut buf = vec![0f32; n * self.size()];
        buf[self.rank() * n..(self.rank() + 1) * n].copy_from_slice(values);
        self.all_reduce_sum(&mut buf, what)?;
        Ok(buf
            .chunks(n.max(1))
            .map(<[f32]>::to_vec)
            .take(self.size())
            .collect())
    }

    /// Returns when every rank has called it.
    ///
    /// # Errors
    /// As [`Group::all_reduce_sum`].
    pub fn barrier(&self, what: &str) -> Result<()> {
        let p = *self.ptr.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = vec![0 as c_char; 1024];
        // SAFETY: `p` is live; `err` holds 1024 bytes.
        let rc = unsafe { vg_barrier(p, err.as_mut_ptr(), err.len()) };
        if rc != 0 {
            // SAFETY: gloo.cc wrote a NUL-terminated message.
            let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
            return Err(self.failed(what, &msg));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::Launcher;

    #[test]
    fn two_ranks_in_threads_sum_gather_and_meet() {
        // Not probed (see tests/it/dist.rs): another test thread's fork could inherit the
        // probe's socket and hold the port.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let port = 20_000 + (nanos % 12_000) as u16;
        let ranks: Vec<_> = (0..2)
            .map(|rank| {
                std::thread::spawn(move || {
                    let world = World {
                        rank,
                        size: 2,
                        local_rank: rank,
                        master: format!("127.0.0.1:{port}"),
                        launcher: Launcher::Torchrun,
                        agent_store: false,
                    };
                    let g = Group::connect(world, Duration::from_secs(20)).unwrap();
                    let mut out = Vec::new();
                    for step in 0..3 {
                        let mut v: Vec<f32> =
                            (0..1000).map(|i| (i * (rank + 1) + step) as f32).collect();
                        g.all_reduce_sum(&mut v, "test").unwrap();
                        out.push(v);
                    }
                    let gathered = g.all_gather(&[rank as f32, 10.0], "ids").unwrap();
                    g.barrier("end").unwrap();
                    (out, gathered)
                })
            })
            .collect();
        let results: Vec<_> = ranks.into_iter().map(|h| h.join().unwrap()).collect();
        for (out, gathered) in &results {
            for (step, v) in out.iter().enumerate() {
                for (i, x) in v.iter().enumerate() {
                    assert_eq!(*x, (3 * i + 2 * step) as f32);
                }
            }
            assert_eq!(gathered, &vec![vec![0.0, 10.0], vec![1.0, 10.0]]);
        }
    }
}
