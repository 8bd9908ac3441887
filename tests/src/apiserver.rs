//! `TestApiserver`: a real `berth apiserver` (in this process, on its own thread and
//! runtime, on a free loopback port, with the embedded store in a temporary directory) and a
//! way to run the real `kubectl` against it with the admin kubeconfig.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use apiserver::server::{Config, Server};
use apiserver::store::Store;

/// Where a test apiserver keeps its objects.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded store under the data directory.
    Embedded,
    /// etcd at this client URL.
    Etcd(String),
}

/// A running apiserver. Stops when dropped; the data directory stays until the
/// `tempfile::TempDir` given to [`TestApiserver::start_in`] is dropped.
#[derive(Debug)]
pub struct TestApiserver {
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The port.
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestApiserver {
    /// Starts an apiserver with its data (certificates, store) in `dir`, on `port` (0: any).
    /// A `tokens.csv` in `dir` is used as `--token-auth-file`.
    pub fn start_in(dir: &Path, port: u16) -> anyhow::Result<Self> {
        Self::start_with(dir, port, Backend::Embedded)
    }

    /// Like [`TestApiserver::start_in`] with a chosen storage backend.
    pub fn start_with(dir: &Path, port: u16, backend: Backend) -> anyhow::Result<Self> {
        let dir = dir.to_path_buf();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<(PathBuf, u16)>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let started = async {
                    let store: Arc<dyn Store> = match backend {
                        Backend::Embedded => {
                            apiserver::store::embedded::EmbeddedStore::open(&dir.join("store"))?
                        }
                        Backend::Etcd(url) => {
                            apiserver::store::etcd::EtcdStore::connect(&[url], "").await?
                        }
                    };
                    let mut config = Config::new(&dir);
                    config.secure_port = port;
                    config.bookmark_interval = std::time::Duration::from_secs(2);
                    let tokens = dir.join("tokens.csv");
                    if tokens.exists() {
                        config.token_auth_file = Some(tokens);
                    }
                    anyhow::Ok(Server::bind(config, store).await?)
                };
                match started.await {
                    Ok(server) => {
                        let _ = ready_tx
                            .send(Ok((server.kubeconfig.clone(), server.local_addr().port())));
                        let _ = server
                            .serve(async {
                                let _ = stop_rx.await;
                            })
                            .await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        });
        let (kubeconfig, port) = ready_rx.recv()??;
        Ok(TestApiserver {
            kubeconfig,
            url: format!("https://127.0.0.1:{port}"),
            port,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// A kube-rs client with the admin kubeconfig.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Runs `kubectl ARGS` with the admin kubeconfig; `stdin` is fed to it if given.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        kubectl(&self.kubeconfig, args, stdin)
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it fails.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestApiserver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The kubectl binary: `$KUBECTL` or `kubectl` on PATH.
pub fn kubectl_binary() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// Runs kubectl with `kubeconfig`.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = std::process::Command::new(kubectl_binary());
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    // No cached discovery from other runs.
    cmd.env(
        "KUBECACHEDIR",
        kubeconfig
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .join("kubecache"),
    );
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("kubectl is installed (the machine image has it)");
    if let Some(mut pipe) = child.stdin.take()
        && let Some(input) = stdin
    {
        let _ = pipe.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("kubectl runs")
}
