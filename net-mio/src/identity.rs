//! Keys kept in small files, made on first use: a seed's signing identity (ed25519) and a
//! tracker's link key (X25519, `secure`); and the keys remembered on first use.
//!
//! A key file holds the 32 secret bytes as 64 hex digits and a newline, readable by its
//! owner only (0600). It is created atomically: written under a temporary name, then
//! hard-linked to its name, which fails if another process made it first (that one's key is
//! then used), so seeds started at once on one host share one identity instead of racing.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use pdtp_core::signing::{SeedKey, SigningKey};

use crate::secure::{LinkKey, TrackerKey};

/// `$XDG_CONFIG_HOME/pdtp`, else `$HOME/.config/pdtp`.
fn config_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("pdtp"))
}

/// Where a seed keeps its identity when the config names none:
/// `$XDG_CONFIG_HOME/pdtp/seed-identity`, else `$HOME/.config/pdtp/seed-identity`.
pub fn default_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("seed-identity"))
}

/// Where a tracker keeps its link key when the config names none: `tracker-identity`
/// beside the seed identity.
pub fn tracker_identity_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("tracker-identity"))
}

/// The signing key in `path`, made (with its directory) if the file does not exist.
/// Errors name the file and what is wrong with it.
pub fn load_or_create(path: &Path) -> Result<SigningKey, String> {
    load_or_create_secret(path, "seed identity").map(SigningKey::from_secret)
}

/// The tracker's link key in `path`, made (with its directory) if the file does not exist.
pub fn load_or_create_tracker_key(path: &Path) -> Result<TrackerKey, String> {
    load_or_create_secret(path, "tracker identity").map(TrackerKey::from_secret)
}

/// The 32 secret bytes in `path` (a `what`), made if the file does not exist.
fn load_or_create_secret(path: &Path, what: &str) -> Result<[u8; 32], String> {
    let shown = path.display();
    let read_key = |text: &str| parse(text, what).map_err(|why| format!("{shown}: {why}"));
    match fs::read_to_string(path) {
        Ok(text) => return read_key(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| format!("{shown}: no randomness from the OS for a new key: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(format!("{}\n", hex(&secret)).as_bytes())?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(secret),
        // Another process made it between our read and our link: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_key(&fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?)
        }
        Err(e) => Err(format!("{shown}: cannot create the {what}: {e}")),
    }
}

fn parse(text: &str, what: &str) -> Result<[u8; 32], String> {
    // The same 64-hex-digit form as a public key, so one parser checks both.
    let bytes = text
        .trim()
        .parse::<SeedKey>()
        .map_err(|_| format!("not a {what} (64 hex digits of secret key; move it away to make a new one)"))?;
    Ok(bytes.0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_identity_is_made_once_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/seed-identity");
        let made = load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&path).unwrap().public(), made.public());
        let other = load_or_create(&dir.path().join("other")).unwrap();
        assert_ne!(other.public(), made.public(), "a new file gets a new key");
        assert_eq!(fs::read_dir(dir.path().join("sub")).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn a_damaged_identity_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed-identity");
        fs::write(&path, "not hex\n").unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert!(e.contains("seed-identity") && e.contains("not a seed identity"), "{e}");
    }
}

/// Where `get` remembers the seed key of each URL it fetched unpinned (trust on first use):
/// `known_seeds` beside the seed identity (`$XDG_CONFIG_HOME/pdtp/` or `~/.config/pdtp/`).
pub fn known_seeds_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("known_seeds"))
}

/// Where seeds and `get` remember the link key of each tracker they reached unpinned:
/// `known_trackers` beside `known_seeds`.
pub fn known_trackers_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("known_trackers"))
}

/// The seed keys `get` saw on first use, by URL (`pdtp://HOST:PORT/PATH`, no fragment): one
/// `URL KEY` line each, `#` comments. A later fetch of the same URL without `#seed=` pins the
/// remembered key, so a tracker (or a proxy) cannot swap the seed behind it unnoticed.
pub type KnownSeeds = Known<SeedKey>;

/// The trackers' link keys seen on first use, by `HOST:PORT`, in the same form: a later
/// connection to the same address requires the same key.
pub type KnownTrackers = Known<LinkKey>;

/// Keys remembered on first use: one `NAME KEY` line each, `#` comments.
#[derive(Debug)]
pub struct Known<K> {
    keys: std::collections::BTreeMap<String, K>,
}

impl<K> Default for Known<K> {
    fn default() -> Self {
        Self { keys: std::collections::BTreeMap::new() }
    }
}

impl<K: Copy + std::str::FromStr + std::fmt::Display> Known<K>
where
    K::Err: std::fmt::Display,
{
    /// The keys in `path`; none if it does not exist. A malformed line is an error naming
    /// the file and the line.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut keys = std::collections::BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("{}: line {}: {why}", path.display(), n + 1);
            let (url, key) = line.split_once(char::is_whitespace).ok_or_else(|| bad("expected 'URL KEY'"))?;
            let key = key.trim().parse().map_err(|e: K::Err| bad(&e.to_string()))?;
            keys.insert(url.to_owned(), key);
        }
        Ok(Self { keys })
    }

    /// The key remembered for `url`.
    pub fn get(&self, url: &str) -> Option<K> {
        self.keys.get(url).copied()
    }

    /// Appends `url key` to `path` (making its directory), so the next fetch pins it.
    pub fn remember(path: &Path, url: &str, key: &K) -> Result<(), String> {
        let shown = path.display();
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{shown}: {e}"))?;
        writeln!(f, "{url} {key}").map_err(|e| format!("{shown}: {e}"))
    }
}
