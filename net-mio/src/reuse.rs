//! Sockets that share a node's listening port: its listener, its tracker link and its hole
//! punches (docs/protocol.md, "Reachability").
//!
//! A NAT maps a connection's local port to a public one. A node behind NAT dials the tracker
//! from its listening port, so the tracker sees where the NAT maps that port; a hole punch
//! then dials the other node from the same port, and a NAT that maps a local port the same
//! way whatever the destination (as Linux's masquerade and most home routers do) lets the
//! two dials meet. Sharing a port takes `SO_REUSEADDR` and `SO_REUSEPORT` on every socket
//! bound to it, the listener included; the kernel then tells the connections apart by
//! their remote ends. Only sockets of the same user may share a port this way.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};

fn shared_socket(family_of: &SocketAddr) -> io::Result<std::os::fd::OwnedFd> {
    let family = if family_of.is_ipv6() { AddressFamily::INET6 } else { AddressFamily::INET };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    Ok(fd)
}

/// A listener on `addr` whose port outgoing connections may share ([`connect_from`]).
pub fn listen(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let fd = shared_socket(&addr)?;
    if addr.is_ipv6() {
        // Dual-stack, as the listener it replaces: IPv4 clients too.
        sockopt::set_ipv6_v6only(&fd, false)?;
    }
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    Ok(mio::net::TcpListener::from_std(std::net::TcpListener::from(fd)))
}

/// A non-blocking connection to `to` from local port `port` (shared with the node's
/// listener); the connect completes later, as `mio::net::TcpStream::connect`'s does.
pub fn connect_from(port: u16, to: SocketAddr) -> io::Result<mio::net::TcpStream> {
    let fd = shared_socket(&to)?;
    let local = match to {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
    };
    rustix::net::bind(&fd, &local)?;
    match rustix::net::connect(&fd, &to) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(mio::net::TcpStream::from_std(std::net::TcpStream::from(fd)))
}
