//! Binding listeners, with the original's fallback for a peer's listen port.
//!
//! A peer asks for `listen_port` (default 8000); if that port is taken it tries the next ones,
//! up to [`PORT_FALLBACK_TRIES`] ports in all, as the original client did, and reports the port
//! it got (the peer announces it to the tracker in its hello). Only "address in use" moves on to
//! the next port; any other error (no such address, permission denied) is reported at once.
//! Port 0 asks the OS for any free port. The tracker and its stats page never fall back: an
//! operator who configured a port wants exactly that port, so a taken one is an error.

use std::io;
use std::net::{IpAddr, SocketAddr};

use mio::net::TcpListener;

/// Ports tried by [`bind_with_fallback`]: the requested one and the next 99.
pub const PORT_FALLBACK_TRIES: u16 = 100;

/// Binds `ip:port`, or the next free port above it; returns the listener and its port.
pub fn bind_with_fallback(ip: IpAddr, port: u16) -> Result<(TcpListener, u16), BindError> {
    let mut last = None;
    // Port 0 lets the OS choose: one try. Otherwise up to PORT_FALLBACK_TRIES ports, not past 65535.
    let tries = if port == 0 { 1 } else { PORT_FALLBACK_TRIES };
    for p in (0..tries).map_while(|i| port.checked_add(i)) {
        match bind_shared(SocketAddr::new(ip, p)) {
            Ok(l) => {
                let got = l
                    .local_addr()
                    .map_err(|source| BindError::Io { addr: SocketAddr::new(ip, p), source })?;
                return Ok((l, got.port()));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(p),
            Err(source) => return Err(BindError::Io { addr: SocketAddr::new(ip, p), source }),
        }
    }
    Err(BindError::AllTaken { ip, first: port, last: last.unwrap_or(port) })
}

/// A listener whose port the node's tracker link and hole punches share ([`crate::reuse`]).
/// A port some other socket holds is "in use" here too: a plain bind tries it first, since
/// with `SO_REUSEPORT` alone two nodes of one user could both listen on it and split its
/// connections. (Two nodes starting in the same instant could still both pass the test.)
fn bind_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr)?);
    }
    crate::reuse::listen(addr)
}

/// Binds every address of this host, IPv6 and IPv4 both (one dual-stack socket on `[::]`),
/// at `port` or the next free one as [`bind_with_fallback`]; IPv4 only (`0.0.0.0`) where the
/// host has no IPv6.
pub fn bind_any(port: u16) -> Result<(TcpListener, u16), BindError> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    match bind_with_fallback(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port) {
        // Taken ports are taken for IPv4 too (the socket is dual-stack).
        Err(BindError::Io { .. }) => bind_with_fallback(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        bound => bound,
    }
}

/// Binds exactly `addr` (tracker and stats page); a taken port is an error naming it.
pub fn bind_exact(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).map_err(|source| BindError::Io { addr, source })
}

/// Why no listener could be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Every port in the fallback range is taken.
    #[error("ports {first}..={last} on {ip} are all in use; choose another listen_port")]
    AllTaken {
        /// The address.
        ip: IpAddr,
        /// The first port tried.
        first: u16,
        /// The last port tried.
        last: u16,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn falls_back_to_the_next_free_port() {
        // Hold an ephemeral port, then ask for it: the next free one above is used.
        let (held, port) = bind_with_fallback(LOOPBACK, 0).unwrap();
        assert_ne!(port, 0);
        match bind_with_fallback(LOOPBACK, port) {
            Ok((l, got)) => {
                assert!(got > port && got < port.saturating_add(PORT_FALLBACK_TRIES), "{port} -> {got}");
                assert_eq!(l.local_addr().unwrap().port(), got);
            }
            // Only if all 100 following ports happen to be taken on this machine.
            Err(BindError::AllTaken { first, .. }) => assert_eq!(first, port),
            Err(e) => panic!("{e}"),
        }
        let e = bind_exact(SocketAddr::new(LOOPBACK, port)).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot listen on 127.0.0.1:{port}:")), "{e}");
        drop(held);
    }

    #[test]
    fn other_errors_are_not_retried() {
        // 192.0.2.1 (TEST-NET-1) is not an address of this machine.
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let e = bind_with_fallback(ip, 8000).unwrap_err();
        assert!(matches!(e, BindError::Io { addr, .. } if addr.port() == 8000), "{e}");
    }
}
