//! A real Redis server for the tests of the gateways' shared store.

use std::time::Duration;

/// A real redis-server on a free loopback port, stopped when dropped.
#[derive(Debug)]
pub struct Redis {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Redis {
    /// Start it (scripts/install-deps.sh installs `redis-server`).
    pub fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/install-deps.sh installs it)");
        let addr = format!("127.0.0.1:{port}");
        let up = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(&addr).is_ok()
        });
        assert!(up, "redis-server did not start");
        Redis { child, addr }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
