//! The real application listening on a real port (0: the system picks), for
//! the clients that come from outside the test process: the browser test's
//! Chromium and schemathesis.

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::Shutdown;

pub struct Server {
    pub port: u16,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<rocket::Rocket<rocket::Ignite>, rocket::Error>>,
}

impl Server {
    /// Launches the app built from `figment` on 127.0.0.1 and a free port.
    pub async fn start(figment: Figment) -> Server {
        Server::start_on(figment, 0).await
    }

    /// Launches the app built from `figment` on 127.0.0.1:`port` (0: a
    /// free one).
    pub async fn start_on(figment: Figment, port: u16) -> Server {
        let figment = figment.merge(("address", "127.0.0.1")).merge(("port", port));
        let (lifted_tx, lifted_rx) = tokio::sync::oneshot::channel();
        let rocket =
            jwt_blocklist::rocket(figment).attach(AdHoc::on_liftoff("Report the port", move |rocket| {
                let _ = lifted_tx.send((rocket.config().port, rocket.shutdown()));
                Box::pin(async {})
            }));
        let task = tokio::spawn(rocket.launch());
        let (port, shutdown) = lifted_rx.await.expect("the server lifts off");
        Server { port, shutdown, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn stop(self) {
        self.shutdown.notify();
        let _ = self.task.await;
    }
}

/// Runs `tests/browser/<script>` in Node (Debian's Chromium through
/// playwright-core, both installed by `scripts/setup`) against `server`,
/// then stops the server. Fails the test if the script fails; returns its
/// output and the screenshot it saved under `target/tmp/`.
pub async fn run_in_browser(server: Server, script: &str, screenshot: &str) -> (String, std::path::PathBuf) {
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(screenshot);
    let output = tokio::process::Command::new("node")
        .arg(format!("tests/browser/{script}"))
        .arg(server.url())
        .arg(&screenshot)
        .output()
        .await
        .expect("node runs (scripts/setup installs it)");
    server.stop().await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser run failed:\n{stdout}\n{stderr}");
    (stdout, screenshot)
}
