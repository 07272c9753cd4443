//! A real SQS endpoint on loopback for tests: `moto_server` (PyPI `moto[server]`), one process per
//! test binary, on a free port, stopped when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `moto_server`.
pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl MotoServer {
    /// Starts `moto_server` (found on `PATH`, or at `$MOTO_SERVER`) and waits until it accepts
    /// connections. Panics with the install command when it is missing: these tests need it.
    pub fn start() -> MotoServer {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // A watchdog shell owns the server: it stops it when the test process is gone (a server
        // kept in a `static` is never dropped) or when told to (SIGTERM from `drop`).
        let script = format!(
            "\"$0\" -H 127.0.0.1 -p {port} & m=$!; trap 'kill $m 2>/dev/null; wait $m; exit' TERM INT EXIT; \
             while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done",
            parent = std::process::id()
        );
        let child = Command::new("bash")
            .args(["-c", &script, &program])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bash for {program}: {e}"));
        let mut server = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "{program} exited at start-up ({status}); install it with: \
                     pip install 'moto[server]' (bash .ci/test does)"
                );
            }
            assert!(
                Instant::now() < deadline,
                "{program} did not listen on {addr} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // SIGTERM, so that the watchdog's trap stops the server too.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// One server for the whole test binary, started on first use (the watchdog stops it when the
/// binary exits).
pub fn shared() -> &'static MotoServer {
    static SERVER: std::sync::OnceLock<MotoServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(MotoServer::start)
}
