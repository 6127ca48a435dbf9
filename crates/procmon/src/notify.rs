//! The client side of sd_notify: procmon telling its own service manager
//! (systemd with `Type=notify`) how it is doing.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `message` (`KEY=VALUE` lines) as one datagram to the socket
/// `target` names: a path, or an abstract socket written `@name`, as
/// systemd sets `NOTIFY_SOCKET`.
pub fn send(target: &str, message: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let address = match target.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None => SocketAddr::from_pathname(target)?,
    };
    socket.send_to_addr(message.as_bytes(), &address)?;
    Ok(())
}
