//! A PostgreSQL of its own for a test: `initdb` into a temporary folder and
//! `postgres` on a free loopback port, stopped and removed when dropped.
//! Nothing is assumed to be running beforehand; Debian's `postgresql`
//! package (installed by `./scripts/test`) provides the binaries.
//!
//! PostgreSQL refuses to run as root, so under root (CI) the cluster
//! belongs to `nobody` and its programs run as that user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user the cluster is made for.
pub const USER: &str = "rl_lab";

/// The unprivileged user a root test runs PostgreSQL as.
const NOBODY: u32 = 65534;

/// A running cluster.
pub struct Postgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// [`USER`]'s password.
    pub password: String,
    server: Child,
    bin: PathBuf,
    data: PathBuf,
    /// Holds the cluster's folder until the server has stopped.
    _folder: tempfile::TempDir,
}

/// The folder of Debian's PostgreSQL programs (`/usr/lib/postgresql/N/bin`,
/// the newest N), or of the `initdb` on the PATH.
fn bin_dir() -> PathBuf {
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .max_by_key(|bin| {
            bin.parent()
                .and_then(Path::file_name)
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
    debian.unwrap_or_else(|| {
        let found = Command::new("sh")
            .args(["-c", "command -v initdb"])
            .output()
            .expect("run sh");
        let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
        assert!(
            !path.is_empty(),
            "PostgreSQL is not installed: run the suite with ./scripts/test, which installs Debian's postgresql"
        );
        PathBuf::from(path)
            .parent()
            .expect("initdb's folder")
            .to_path_buf()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program` of `bin`, run as `nobody` when the test runs as root.
fn command(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    let mut command = if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
            ])
            .arg(path);
        command
    } else {
        Command::new(path)
    };
    // The test's own folder may be closed to `nobody`.
    command.current_dir(std::env::temp_dir());
    command
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Postgres {
    /// Makes a cluster with user [`USER`], whose password is `password`
    /// (clients must give it: `scram-sha-256` on loopback), and starts it.
    pub fn start(password: &str) -> Postgres {
        let bin = bin_dir();
        let folder = tempfile::tempdir().expect("a temporary folder");
        let data = folder.path().join("data");
        let password_file = folder.path().join("password");
        std::fs::write(&password_file, password).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", &format!("{NOBODY}:{NOBODY}")])
                .arg(folder.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster's folder");
        }
        let out = command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth=scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", password_file.display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&password_file).unwrap();
        // A port found free may be taken before the server binds it: try
        // a few.
        for _ in 0..5 {
            let port = free_port();
            let mut server = command(&bin, "postgres")
                .arg("-D")
                .arg(&data)
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .arg("-k")
                .arg(folder.path())
                .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start postgres");
            let began = Instant::now();
            while began.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = server.try_wait() {
                    break;
                }
                let ready = Command::new(bin.join("pg_isready"))
                    .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                    .status()
                    .is_ok_and(|s| s.success());
                if ready {
                    return Postgres {
                        port,
                        password: password.to_string(),
                        server,
                        bin,
                        data,
                        _folder: folder,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = server.kill();
            let _ = server.wait();
        }
        panic!("postgres did not start in {}", data.display());
    }

    /// Creates database `name` (with Debian's `psql`), for a test's store.
    pub fn create_database(&self, name: &str) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A connection URL without the password, as `--store` takes it.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Postgres {
    /// A fast shutdown (`pg_ctl stop -m fast`), then the folder goes.
    fn drop(&mut self) {
        let _ = command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "fast", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
