//! The rendezvous store: a key-value map that rank 0 serves over TCP at `MASTER_ADDR:
//! MASTER_PORT` and every rank (rank 0 included) reads and writes, as PyTorch's `TCPStore`
//! does for its process groups. Gloo's full-mesh connection set-up exchanges each rank's
//! listening address through it; after that it is idle.
//!
//! Protocol (one request, one reply, on a connection kept open): a request is an opcode byte
//! (`1` set, `2` get), the key as a u32 length (big-endian) and its bytes, and for `set` the
//! value likewise; `set` is answered by one byte `0`; `get` waits until the key exists and is
//! answered by the value (u32 length and bytes).

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const SET: u8 = 1;
const GET: u8 = 2;
/// A value larger than this is refused (Gloo's addresses are tens of bytes).
const MAX_VALUE: u32 = 1 << 24;

type Map = Arc<(Mutex<HashMap<String, Vec<u8>>>, Condvar)>;

/// Serves the store on `port` (all interfaces) from a background thread for the life of the
/// process.
///
/// # Errors
/// The port cannot be bound (in use: another run, or a stale rank 0).
pub fn serve(port: u16) -> Result<SocketAddr> {
    let listener = TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
        Error::Distributed(format!(
            "rank 0 cannot serve the rendezvous on port {port}: {e} (another run using MASTER_PORT {port}? choose another)"
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Distributed(format!("rendezvous listener: {e}")))?;
    let map: Map = Arc::new((Mutex::new(HashMap::new()), Condvar::new()));
    std::thread::Builder::new()
        .name("rendezvous".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let map = map.clone();
                let _ = std::thread::Builder::new()
                    .name("rendezvous-peer".into())
                    .spawn(move || serve_peer(stream, map));
            }
        })
        .map_err(|e| Error::Distributed(format!("rendezvous thread: {e}")))?;
    Ok(addr)
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_bytes(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let n = read_u32(r)?;
    if n > MAX_VALUE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a rendezvous message of {n} bytes (at most {MAX_VALUE})"),
        ));
    }
    let mut v = vec![0u8; n as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

fn write_bytes(w: &mut impl Write, b: &[u8]) -> std::io::Result<()> {
    w.write_all(&(b.len() as u32).to_be_bytes())?;
    w.write_all(b)
}

/// Answers one peer until it disconnects (or sends something that is not the protocol).
fn serve_peer(stream: TcpStream, map: Map) {
    let _ = stream.set_nodelay(true);
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    let mut w = BufWriter::new(clone);
    loop {
        let mut op = [0u8; 1];
        if r.read_exact(&mut op).is_err() {
            return;
        }
        let Ok(key) = read_bytes(&mut r) else {
            return;
        };
        let key = String::from_utf8_lossy(&key).into_owned();
        let (lock, cv) = &*map;
        let reply = match op[0] {
            SET => {
                let Ok(value) = read_bytes(&mut r) else {
                    return;
                };
                let mut m = lock.lock().unwrap_or_else(|p| p.into_inner());
                m.insert(key, value);
                cv.notify_all();
                w.write_all(&[0])
            }
            GET => {
                let mut m = lock.lock().unwrap_or_else(|p| p.into_inner());
                while !m.contains_key(&key) {
                    m = cv.wait(m).unwrap_or_else(|p| p.into_inner());
                }
                let value = m[&key].clone();
                drop(m);
                write_bytes(&mut w, &value)
            }
            _ => return,
        };
        if reply.and_then(|()| w.flush()).is_err() {
            return;
        }
    }
}

/// A connection to the store.
pub struct Client {
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
    master: String,
    addr: SocketAddr,
    timeout: Duration,
}

impl Client {
    /// Connects to the store at `master` (`host:port`), retrying until `timeout` passes (the
    /// other ranks, rank 0 among them, may start later).
    ///
    /// # Errors
    /// Nothing answered within `timeout`.
    pub fn connect(master: &str, addr: SocketAddr, timeout: Duration) -> Result<Client> {
        let (r, w) = Self::open(master, addr, timeout)?;
        Ok(Client {
            r,
            w,
            master: master.to_string(),
            addr,
            timeout,
        })
    }

    fn open(
        master: &str,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(BufReader<TcpStream>, BufWriter<TcpStream>)> {
        let t0 = Instant::now();
        let stream = loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => break s,
                Err(e) if t0.elapsed() >= timeout => {
                    return Err(Error::Distributed(format!(
                        "no rendezvous at {master} ({addr}) after {:.0} s: {e}; is rank 0 running, and is MASTER_ADDR its host?",
                        timeout.as_secs_f64()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| Error::Distributed(format!("rendezvous socket: {e}")))?;
        let clone = stream
            .try_clone()
            .map_err(|e| Error::Distributed(format!("rendezvous socket: {e}")))?;
        Ok((BufReader::new(stream), BufWriter::new(clone)))
    }

    /// Runs `request` on the connection; a connection that broke (reset, closed) is opened
    /// again and the request repeated (both requests are idempotent) until the timeout.
    fn request<T>(
        &mut self,
        what: &str,
        key: &str,
        request: impl Fn(&mut BufReader<TcpStream>, &mut BufWriter<TcpStream>) -> std::io::Result<T>,
    ) -> Result<T> {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
        let t0 = Instant::now();
        loop {
            match request(&mut self.r, &mut self.w) {
                Ok(v) => return Ok(v),
                Err(e)
                    if matches!(
                        e.kind(),
                        BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
                    ) && t0.elapsed() < self.timeout =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                    let left = self.timeout.saturating_sub(t0.elapsed());
                    let (r, w) =
                        Self::open(&self.master, self.addr, left.max(Duration::from_secs(1)))?;
                    (self.r, self.w) = (r, w);
                }
                Err(e) => return Err(self.failed(what, key, e)),
            }
        }
    }

    fn failed(&self, what: &str, key: &str, e: std::io::Error) -> Error {
        let why = match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "timed out: a rank did not arrive (did every rank start? is the world size right?)"
                    .to_string()
            }
            _ => format!("{e} (rank 0 stopped?)"),
        };
        Error::Distributed(format!(
            "rendezvous at {}: {what} {key:?}: {why}",
            self.master
        ))
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// The connection failed or timed out.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.request("set", key, |r, w| {
            w.write_all(&[SET])?;
            write_bytes(w, key.as_bytes())?;
            write_bytes(w, value)?;
            w.flush()?;
            let mut ack = [0u8; 1];
            r.read_exact(&mut ack)
        })
    }

    /// The value under `key`, waiting until some rank sets it.
    ///
    /// # Errors
    /// The connection failed, or the key did not appear within the timeout.
    pub fn get(&mut self, key: &str) -> Result<Vec<u8>> {
        self.request("get", key, |r, w| {
            w.write_all(&[GET])?;
            write_bytes(w, key.as_bytes())?;
            w.flush()?;
            read_bytes(r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_waits_for_the_set_of_another_client() {
        let addr = serve(0).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", addr.port()).parse().unwrap();
        let t = Duration::from_secs(10);
        let reader = std::thread::spawn(move || {
            let mut c = Client::connect("test", addr, t).unwrap();
            c.get("rank/1").unwrap()
        });
        std::thread::sleep(Duration::from_millis(50));
        let mut c = Client::connect("test", addr, t).unwrap();
        c.set("rank/1", b"hello").unwrap();
        assert_eq!(reader.join().unwrap(), b"hello");
        assert_eq!(c.get("rank/1").unwrap(), b"hello");
    }

    #[test]
    fn a_missing_key_times_out_with_a_message() {
        let addr = serve(0).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", addr.port()).parse().unwrap();
        let mut c = Client::connect("here:1", addr, Duration::from_millis(300)).unwrap();
        let e = c.get("never").unwrap_err().to_string();
        assert!(e.contains("timed out") && e.contains("\"never\""), "{e}");
    }
}
