//! A PostgreSQL cluster of one test's own, which it may stop, start and
//! restrict without disturbing the server every other test shares
//! (`DATABASE_URL`). It runs the binaries that `scripts/dev-env.sh` finds
//! (PG_BINDIR, the newest /usr/lib/postgresql/*/bin, or `pg_config --bindir`),
//! as user `postgres` when the test runs as root (PostgreSQL refuses root; CI
//! runs as root, laptops do not), on a free port of 127.0.0.1, with fsync off.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How `pg_ctl stop` ends the server.
#[derive(Debug, Clone, Copy)]
pub enum StopMode {
    /// Clients are disconnected (FATAL 57P01), a clean shutdown.
    Fast,
    /// Every process quits at once, as in a crash; the next start recovers
    /// from the WAL.
    Immediate,
}

impl StopMode {
    fn arg(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// A running private cluster; stopped and deleted on drop.
pub struct PgCluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

impl PgCluster {
    /// initdb and start a cluster; `settings` are added to postgresql.conf
    /// (e.g. `("max_connections", "20")`).
    pub fn start(settings: &[(&str, &str)]) -> Self {
        let bin = pg_bindir();
        let as_postgres = nix::unistd::geteuid().is_root();
        let dir = cluster_dir(as_postgres);
        let port = free_port();
        let cluster = Self {
            port,
            dir,
            bin,
            as_postgres,
        };
        cluster.initdb(settings);
        cluster.start_again();
        cluster
    }

    /// The superuser's URL for database `database`.
    pub fn url(&self, database: &str) -> String {
        self.url_as("postgres", database)
    }

    pub fn url_as(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    /// A migrated database owned by a new role `owner` that is not a
    /// superuser (so the connection limits PostgreSQL sets on roles and on
    /// `max_connections` apply to it); returns the owner's URL.
    pub async fn owned_database(&self, name: &str, owner: &str) -> String {
        let admin = super::pool(&self.url("postgres")).await;
        for statement in [
            format!("CREATE ROLE {owner} LOGIN"),
            format!("CREATE DATABASE {name} OWNER {owner}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&admin)
                .await
                .expect("create the role and its database");
        }
        admin.close().await;
        let url = self.url_as(owner, name);
        let migrated = super::run_cli(&url, &["migrate"]);
        assert!(
            migrated.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        url
    }

    /// `pg_ctl stop`, waiting until the server is gone.
    pub fn stop(&self, mode: StopMode) {
        let output = self.pg_ctl(&["stop", "-w", "-t", "30", "-m", mode.arg()]);
        assert!(
            output.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `pg_ctl start` on the same port, waiting until it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.join("postgresql.log");
        let log = log.to_str().expect("a UTF-8 path");
        let output = self.pg_ctl(&["start", "-w", "-t", "60", "-l", log]);
        assert!(
            output.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.join("postgresql.log")).unwrap_or_default()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn initdb(&self, settings: &[(&str, &str)]) {
        let data = self.data();
        let data = data.to_str().expect("a UTF-8 path");
        let mut output = Output {
            status: std::process::ExitStatus::default(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        // C.UTF-8 where the system has it, else C (as dev-env.sh does).
        for locale in ["--locale=C.UTF-8", "--locale=C"] {
            let _ = std::fs::remove_dir_all(self.data());
            output = self.run(
                "initdb",
                &[
                    "-D",
                    data,
                    "--auth=trust",
                    "--username=postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    locale,
                ],
            );
            if output.status.success() {
                break;
            }
        }
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // fsync off: speed, and safe while the machine itself does not
        // crash. synchronous_commit stays on (the default): a commit is then
        // in the WAL before PostgreSQL acknowledges it, so acknowledged
        // publishes survive `pg_ctl stop -m immediate`, as they must. TCP
        // only (a unix socket path under target/ may be too long); the port
        // is in the file so that a restart keeps it.
        let mut conf = format!(
            "\n# private test cluster (tests/common/pg_cluster.rs)\n\
             listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = ''\n\
             fsync = off\n",
            self.port
        );
        for (name, value) in settings {
            conf.push_str(&format!("{name} = {value}\n"));
        }
        let path = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).expect("read postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&path, text).expect("write postgresql.conf");
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data();
        let mut all = vec!["-D", data.to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    /// Runs a PostgreSQL program as the cluster's owner. It blocks (for a
    /// second or so), so on a multi-threaded runtime it tells tokio first.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join(program));
            command
        } else {
            Command::new(self.bin.join(program))
        };
        command.args(args).current_dir(&self.dir);
        let mut run = move || command.output().expect("run a PostgreSQL program");
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["stop", "-w", "-m", "immediate"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory with initdb, pg_ctl and postgres.
fn pg_bindir() -> PathBuf {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| usable(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return dir;
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .filter(|dir| usable(dir));
    from_pg_config.expect(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found: \
         set PG_BINDIR or install postgresql (make test does)",
    )
}

/// A new directory under target/tmp, or under the system's temporary
/// directory when user postgres cannot reach target/ (e.g. below /root).
fn cluster_dir(as_postgres: bool) -> PathBuf {
    let name = format!("pg-{}", uuid::Uuid::new_v4().simple());
    let under_target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&name);
    let candidates = [under_target, std::env::temp_dir().join(name)];
    for dir in candidates {
        if std::fs::create_dir_all(&dir).is_err() {
            continue;
        }
        if !as_postgres {
            return dir;
        }
        let owned = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .is_some_and(|user| {
                std::os::unix::fs::chown(&dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                    .is_ok()
            });
        let reachable = owned
            && Command::new("runuser")
                .args(["-u", "postgres", "--", "test", "-w"])
                .arg(&dir)
                .current_dir("/")
                .status()
                .is_ok_and(|status| status.success());
        if reachable {
            return dir;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    panic!("no directory user postgres can write for a private cluster");
}

/// A port nobody listens on now (the kernel's choice).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
