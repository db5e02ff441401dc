//! A loopback TCP proxy for fault injection: it forwards a database's
//! connections until told to go silent, and then forwards nothing in either
//! direction while keeping every socket open (a half-open path: no error, no
//! close, no answer), until it is stopped, which closes them all.
//!
//! Plain threads and blocking sockets: a test's runtime stays free for the
//! test, and the proxy needs no more of tokio than the crate has.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{TestResult, fail};

/// A running proxy on 127.0.0.1:`port`.
pub struct Proxy {
    pub port: u16,
    silent: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    /// Every socket it holds, to close on `stop`.
    sockets: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TestResult<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let silent = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, st, so) = (silent.clone(), stopped.clone(), sockets.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let pairs = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                );
                let (Ok(c1), Ok(s1), Ok(c2), Ok(s2)) = pairs else {
                    continue;
                };
                if let Ok(mut v) = so.lock() {
                    v.push(client);
                    v.push(server);
                }
                let (a, b) = (s.clone(), s.clone());
                let (sa, sb) = (st.clone(), st.clone());
                std::thread::spawn(move || pipe(c1, s1, &a, &sa));
                std::thread::spawn(move || pipe(s2, c2, &b, &sb));
            }
        });
        Ok(Proxy {
            port,
            silent,
            stopped,
            sockets,
        })
    }

    /// From now on nothing is forwarded; every socket stays open.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Closes every connection and stops listening.
    pub fn stop(self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Ok(v) = self.sockets.lock() {
            for s in v.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies `from` to `to` until either closes; once `silent`, drops what it
/// reads and holds both sockets open until the proxy stops.
fn pipe(mut from: TcpStream, mut to: TcpStream, silent: &AtomicBool, stopped: &AtomicBool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if silent.load(Ordering::SeqCst) {
            while !stopped.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// `url` with its `host:port` replaced by 127.0.0.1:`port`, and the
/// address it pointed at (`postgres://u@h:5432/db` → (`postgres://u@127.0.0.1:P/db`, h:5432)).
pub fn via(url: &str, port: u16) -> TestResult<(String, SocketAddr)> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| fail(format!("no scheme in {url}")))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let default = if scheme.starts_with("mysql") || scheme.starts_with("mariadb") {
        3306
    } else {
        5432
    };
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:{default}")
    };
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&host.as_str())?
        .next()
        .ok_or_else(|| fail(format!("{host} resolves to nothing")))?;
    Ok((
        format!("{scheme}://{user}127.0.0.1:{port}{}", &rest[end..]),
        upstream,
    ))
}
