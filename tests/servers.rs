//! Real object-store servers for the tests, started on free ports on 127.0.0.1 and stopped when
//! dropped: `s3s-fs` and `moto` (two independent S3 implementations), Azurite (Azure Blob) and
//! fake-gcs-server (GCS). `scripts/install-test-servers` installs them outside the clone and
//! `scripts/test` exports where they are; run through `cargo test` alone, these tests fail with the
//! way out rather than pass without checking anything.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The access key the S3 servers are started with.
pub const S3_ACCESS_KEY: &str = "cxlake-test-access";
/// The secret key the S3 servers are started with; tests check it never shows in a message.
pub const S3_SECRET_KEY: &str = "cxlake-test-secret-5f1e9a";

/// Azurite's well-known development account and key (public; Azure's emulator documentation).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Which S3 implementation a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    /// `s3s-fs` (crates.io): buckets are directories, so tests can look at what was written.
    S3sFs,
    /// `moto` (PyPI, `moto[server]`): an independent implementation of the write paths.
    Moto,
}

/// A server process; killed (and its data removed) when dropped.
pub struct Server {
    child: Child,
    kind: Option<S3Kind>,
    pub port: u16,
    pub data: TempDir,
    command: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(variable: &str, what: &str) -> PathBuf {
    match std::env::var_os(variable) {
        Some(path) if Path::new(&path).exists() => path.into(),
        _ => panic!(
            "this test runs a real {what}: run it through `bash scripts/test`, which installs the test servers \
             (scripts/install-test-servers) and sets {variable}, or set {variable} yourself"
        ),
    }
}

/// A port that was free a moment ago.
/// Copies a directory tree: seeds a bucket of a server that keeps buckets as directories
/// (s3s-fs) with a lake from local disk.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before it listened on port {port}: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on port {port} within 60 s");
}

impl Server {
    fn start(program: &Path, args: &[String], port: u16, data: TempDir, what: &str) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what} ({}): {e}", program.display()));
        wait_for_port(port, &mut child, what);
        let mut command = vec![program.display().to_string()];
        command.extend(args.iter().cloned());
        Self { child, kind: None, port, data, command }
    }

    /// An S3 server with credentials [`S3_ACCESS_KEY`] / [`S3_SECRET_KEY`] and the given buckets.
    pub fn s3(kind: S3Kind, buckets: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("server directory");
        let port = free_port();
        let mut server = match kind {
            S3Kind::S3sFs => {
                for bucket in buckets {
                    std::fs::create_dir_all(data.path().join(bucket)).expect("bucket directory");
                }
                let args = [
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--access-key",
                    S3_ACCESS_KEY,
                    "--secret-key",
                    S3_SECRET_KEY,
                ]
                .iter()
                .map(|s| s.to_string())
                .chain([data.path().display().to_string()])
                .collect::<Vec<_>>();
                Self::start(&tool("CXLAKE_S3S_FS", "S3 server (s3s-fs)"), &args, port, data, "s3s-fs")
            }
            S3Kind::Moto => {
                let args =
                    ["-H", "127.0.0.1", "-p", &port.to_string()].iter().map(|s| s.to_string()).collect::<Vec<_>>();
                let server =
                    Self::start(&tool("CXLAKE_MOTO_SERVER", "S3 server (moto)"), &args, port, data, "moto_server");
                for bucket in buckets {
                    server.create_moto_bucket(bucket);
                }
                server
            }
        };
        server.kind = Some(kind);
        server
    }

    /// Whether a multipart upload into `bucket` is under way (an S3 server only): s3s-fs keeps
    /// an `.upload-<id>.json` file per upload in its root, moto lists them (`?uploads`).
    pub fn uploads_in_progress(&self, bucket: &str) -> bool {
        match self.kind.expect("an S3 server") {
            S3Kind::S3sFs => std::fs::read_dir(self.data.path())
                .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(".upload-")))
                .unwrap_or(false),
            S3Kind::Moto => self.http("GET", &format!("/{bucket}?uploads")).contains("<UploadId>"),
        }
    }

    /// A plain HTTP request to the server (moto does not check signatures); the whole response.
    fn http(&self, method: &str, path: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return String::new() };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return String::new();
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    }

    /// Creates a blob container in Azurite with Azure's own Python SDK.
    pub fn create_azure_container(&self, container: &str) {
        crate::run_reference_python(
            &format!("{AZURE_CLIENT}\nclient.create_container(sys.argv[2])"),
            &[&self.azure_connection_string(), container],
        );
    }

    /// The blob names in an Azurite container, listed with Azure's own Python SDK.
    pub fn azure_blobs(&self, container: &str) -> Vec<String> {
        let out = crate::run_reference_python(
            &format!("{AZURE_CLIENT}\nfor b in client.get_container_client(sys.argv[2]).list_blobs(): print(b.name)"),
            &[&self.azure_connection_string(), container],
        );
        let mut names: Vec<String> = out.lines().map(str::to_string).collect();
        names.sort();
        names
    }

    fn azure_connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};\
             BlobEndpoint=http://127.0.0.1:{}/{AZURITE_ACCOUNT};",
            self.port
        )
    }

    /// Creates a bucket in moto with a plain S3 `CreateBucket` request (moto does not check
    /// signatures).
    fn create_moto_bucket(&self, bucket: &str) {
        let response = self.http("PUT", &format!("/{bucket}"));
        assert!(response.starts_with("HTTP/1.1 200"), "moto CreateBucket {bucket}: {response}");
    }

    /// Azurite's Blob service, with its development account.
    pub fn azurite() -> Self {
        let data = tempfile::tempdir().expect("server directory");
        let port = free_port();
        let args = [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
            &data.path().display().to_string(),
            "--silent",
            "--skipApiVersionCheck",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
        Self::start(&tool("CXLAKE_AZURITE_BLOB", "Azure Blob server (Azurite)"), &args, port, data, "azurite-blob")
    }

    /// fake-gcs-server over plain HTTP, serving the buckets found in `seed` (each directory a
    /// bucket, its files the objects).
    pub fn fake_gcs(seed: &Path) -> Self {
        let data = tempfile::tempdir().expect("server directory");
        let port = free_port();
        let args = [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "memory",
            "-data",
            &seed.display().to_string(),
            "-public-host",
            &format!("127.0.0.1:{port}"),
            "-external-url",
            &format!("http://127.0.0.1:{port}"),
            "-log-level",
            "error",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
        Self::start(&tool("CXLAKE_FAKE_GCS", "GCS server (fake-gcs-server)"), &args, port, data, "fake-gcs-server")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The command line the server was started with.
    pub fn command(&self) -> String {
        self.command.join(" ")
    }

    /// Stops the server process in its tracks (SIGSTOP): connections hang, as with a server
    /// that went away mid-request.
    pub fn pause(&self) {
        signal(self.child.id(), "STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }
}

/// The start of the Python scripts that talk to Azurite: a client from the connection string.
const AZURE_CLIENT: &str = "import sys\nfrom azure.storage.blob import BlobServiceClient\n\
client = BlobServiceClient.from_connection_string(sys.argv[1])";

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}
