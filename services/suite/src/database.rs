//! Finding a PostgreSQL for the suite with no set-up step: `DATABASE_URL` if given; else the
//! local server at 127.0.0.1:5432; else a private server of the suite's own, started from
//! PostgreSQL's programs in a data directory under the user's data folder (as pg_tmp and
//! testing.postgresql do for development). The database is created when missing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use inventory_runtime::config::redact;
use sqlx::Connection;
use tokio::process::Command;

/// The local server tried when no `DATABASE_URL` is set.
pub const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// The database the suite uses on a server it finds or starts.
pub const DATABASE: &str = "inventory";
/// The port of the private server (`SUITE_POSTGRES_PORT` changes it).
pub const PRIVATE_PORT: u16 = 54329;

/// Where the suite's database is, and what it started to have it.
#[derive(Debug)]
pub struct Database {
    pub url: String,
    /// A private server this process started: stopped when the suite stops.
    pub private: Option<PrivateServer>,
}

#[derive(Debug)]
pub struct PrivateServer {
    pub data_dir: PathBuf,
    pg_ctl: PathBuf,
}

impl PrivateServer {
    /// Stops the server; its data stays for the next start.
    pub async fn stop(&self) {
        self.stop_with("fast").await;
    }

    /// Stops the server as a crash would (`immediate`: no checkpoint, no goodbye to clients);
    /// the next start recovers from the write-ahead log.
    pub async fn crash(&self) {
        self.stop_with("immediate").await;
    }

    async fn stop_with(&self, mode: &str) {
        let mut command = Command::new(&self.pg_ctl);
        as_server_user(&mut command);
        let _ = command
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode, "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

/// PostgreSQL refuses to run as root: there, its programs run as the `postgres` user when the
/// system has one (its uid and gid), as Debian's own tools do.
fn server_user() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self").ok()?.uid() != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["postgres", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    })
}

fn as_server_user(command: &mut Command) {
    if let Some((uid, gid)) = server_user() {
        command.uid(uid).gid(gid);
    }
}

/// Why there is no database, in words that say what to do.
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::error::Error for SetupError {}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The suite's database: found, created or started (see the module comment).
pub async fn resolve(database_url: Option<String>, port: u16) -> Result<Database, SetupError> {
    if let Some(url) = database_url {
        ensure_database(&url).await?;
        return Ok(Database { url, private: None });
    }
    let local = format!("{LOCAL_SERVER}/{DATABASE}");
    if reachable(&format!("{LOCAL_SERVER}/postgres")).await {
        ensure_database(&local).await?;
        return Ok(Database {
            url: local,
            private: None,
        });
    }
    let Some(bin) = postgres_programs() else {
        return Err(SetupError(
            "no PostgreSQL server answers at 127.0.0.1:5432 and PostgreSQL's programs (initdb, \
             pg_ctl) are not installed. Install PostgreSQL (Debian or Ubuntu: `apt install \
             postgresql`; Fedora: `dnf install postgresql-server`; macOS: `brew install \
             postgresql@16`) or set DATABASE_URL to a server you have."
                .into(),
        ));
    };
    let data_dir = data_dir()?;
    let server = start_private(&bin, &data_dir, port).await?;
    eprintln!(
        "No PostgreSQL at 127.0.0.1:5432, so the suite started its own in {} on port {port}.\n\
         It stops with the suite and keeps its data for the next start; remove it with \
         `rm -rf {}`.",
        data_dir.display(),
        data_dir.display()
    );
    let url = format!("postgres://postgres@127.0.0.1:{port}/{DATABASE}");
    ensure_database(&url).await?;
    Ok(Database {
        url,
        private: Some(server),
    })
}

async fn reachable(url: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(3), sqlx::PgConnection::connect(url)).await,
        Ok(Ok(_))
    )
}

/// Creates the database of `url` when its server says it does not exist.
pub async fn ensure_database(url: &str) -> Result<(), SetupError> {
    let attempt = tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url))
        .await
        .map_err(|_| {
            SetupError(format!(
                "PostgreSQL at {} did not answer in 10 s",
                redact(url)
            ))
        })?;
    let error = match attempt {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    let missing = error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "3D000");
    if !missing {
        return Err(SetupError(format!(
            "cannot connect to {}: {error}",
            redact(url)
        )));
    }
    let (server, name) = url
        .rsplit_once('/')
        .ok_or_else(|| SetupError(format!("DATABASE_URL {} names no database", redact(url))))?;
    let name = name.split('?').next().unwrap_or(name);
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .map_err(|e| SetupError(format!("cannot connect to {}: {e}", redact(server))))?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match sqlx::raw_sql(&format!("CREATE DATABASE {quoted}"))
        .execute(&mut admin)
        .await
    {
        Ok(_) => {
            tracing::info!(database = name, "created the database");
            Ok(())
        }
        // Created meanwhile by another start.
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P04") => {
            Ok(())
        }
        Err(e) => Err(SetupError(format!(
            "cannot create database {name} (give the role CREATEDB, or create it): {e}"
        ))),
    }
}

/// The directory holding initdb and pg_ctl: on PATH, or Debian's versioned directories.
pub fn postgres_programs() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()));
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
            .collect();
        versions.sort_by_key(|bin| {
            bin.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        versions.pop()
    })
}

/// `$XDG_DATA_HOME/inventory-suite/postgres`, else `~/.local/share/inventory-suite/postgres`.
fn data_dir() -> Result<PathBuf, SetupError> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| {
            SetupError("neither XDG_DATA_HOME nor HOME is set: nowhere to keep a database".into())
        })?;
    Ok(base.join("inventory-suite").join("postgres"))
}

/// Starts (or starts again) a server of `bin`'s programs on `data_dir`, made with initdb
/// the first time, listening on 127.0.0.1:`port` only, trusting local connections.
pub async fn start_private(
    bin: &Path,
    data_dir: &Path,
    port: u16,
) -> Result<PrivateServer, SetupError> {
    let run = |program: &str| {
        let mut command = Command::new(bin.join(program));
        as_server_user(&mut command);
        command
    };
    if !data_dir.join("PG_VERSION").is_file() {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| SetupError(format!("cannot create {}: {e}", data_dir.display())))?;
        if let Some((uid, gid)) = server_user() {
            std::os::unix::fs::chown(data_dir, Some(uid), Some(gid)).map_err(|e| {
                SetupError(format!(
                    "cannot give {} to postgres: {e}",
                    data_dir.display()
                ))
            })?;
        }
        let out = run("initdb")
            .arg("-D")
            .arg(data_dir)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .await
            .map_err(|e| SetupError(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            return Err(SetupError(format!(
                "initdb failed in {} (PostgreSQL refuses to run as root: run the suite as a \
                 regular user, or set DATABASE_URL): {}",
                data_dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -k {}",
        data_dir.display()
    );
    let out = run("pg_ctl")
        .arg("-D")
        .arg(data_dir)
        .arg("-l")
        .arg(data_dir.join("server.log"))
        .args(["-o", &options, "-w", "-t", "30", "start"])
        .output()
        .await
        .map_err(|e| SetupError(format!("cannot run pg_ctl: {e}")))?;
    if !out.status.success() {
        return Err(SetupError(format!(
            "could not start the private PostgreSQL in {} on port {port} (see its server.log): {}",
            data_dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(PrivateServer {
        data_dir: data_dir.to_owned(),
        pg_ctl: bin.join("pg_ctl"),
    })
}
