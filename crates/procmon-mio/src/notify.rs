//! procmon as an sd_notify *client*: telling its own service manager
//! (systemd with `Type=notify`, or a supervisor such as procmon itself)
//! that it is ready, what it is doing, or that it is stopping.
//!
//! The protocol is one datagram of newline-separated `KEY=VALUE`
//! assignments (`READY=1`, `STATUS=...`, `STOPPING=1`) to the AF_UNIX
//! socket named in `$NOTIFY_SOCKET`: a path, or an abstract name written
//! with a leading `@`. The receiver learns who sent it from the kernel
//! (`SO_PASSCRED`), so nothing else is needed.
//!
//! The other side, procmon receiving from its children, is the driver's
//! own ([`Readiness::Notify`](procmon_core::Readiness::Notify)).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

/// Sends `state` (such as `"READY=1"`, `"STATUS=3 running"` or
/// `"READY=1\nSTATUS=up"`) to the socket in `$NOTIFY_SOCKET`. `Ok(false)`
/// when the variable is unset or empty: no manager is listening, which is
/// not an error. Does not block (a full receiver fails with `WouldBlock`).
/// The variable is left as it is: procmon's children never inherit it (see
/// [`Readiness::Notify`](procmon_core::Readiness::Notify)).
pub fn send(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) if !socket.is_empty() => send_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` to `socket`, written as `$NOTIFY_SOCKET` would be: a path
/// (absolute), or `@name` for an abstract socket. Other forms (systemd's
/// `vsock:`) fail with `InvalidInput`.
pub fn send_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let bytes = socket.as_bytes();
    let address = match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
        Some(b'/') => SocketAddr::from_pathname(Path::new(socket))?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor an @abstract name",
            ))
        }
    };
    let sender = UnixDatagram::unbound()?;
    sender.set_nonblocking(true)?;
    let sent = sender.send_to_addr(state.as_bytes(), &address)?;
    if sent != state.len() {
        // Datagrams go whole or not at all; this is not expected.
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was cut short",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_and_an_abstract_name_are_both_reached() {
        let dir = std::env::temp_dir().join(format!("procmon-notify-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
        std::fs::remove_dir_all(&dir).unwrap();

        let name = format!("procmon-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        send_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        let refused = send_to(OsStr::new("vsock:2:1"), "READY=1").unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidInput);
    }
}
