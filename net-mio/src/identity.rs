//! A seed's signing identity: an ed25519 secret kept in a small file, made on first use.
//!
//! The file holds the 32 secret bytes as 64 hex digits and a newline, readable by its owner
//! only (0600). It is created atomically: written under a temporary name, then hard-linked
//! to its name, which fails if another seed made it first (that one's key is then used), so
//! seeds started at once on one host share one identity instead of racing.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use pdtp_core::signing::{SeedKey, SigningKey};

/// Where a seed keeps its identity when the config names none:
/// `$XDG_CONFIG_HOME/pdtp/seed-identity`, else `$HOME/.config/pdtp/seed-identity`.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("pdtp").join("seed-identity"))
}

/// The signing key in `path`, made (with its directory) if the file does not exist.
/// Errors name the file and what is wrong with it.
pub fn load_or_create(path: &Path) -> Result<SigningKey, String> {
    let shown = path.display();
    match fs::read_to_string(path) {
        Ok(text) => return parse(&text).map_err(|why| format!("{shown}: {why}")),
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
        Ok(()) => Ok(SigningKey::from_secret(secret)),
        // Another seed made it between our read and our link: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
            parse(&text).map_err(|why| format!("{shown}: {why}"))
        }
        Err(e) => Err(format!("{shown}: cannot create the seed's identity: {e}")),
    }
}

fn parse(text: &str) -> Result<SigningKey, String> {
    // The same 64-hex-digit form as a public key, so one parser checks both.
    let bytes = text.trim().parse::<SeedKey>().map_err(|_| {
        "not a seed identity (64 hex digits of secret key; move it away to make a new one)".to_owned()
    })?;
    Ok(SigningKey::from_secret(bytes.0))
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
    default_path().map(|p| p.with_file_name("known_seeds"))
}

/// The seed keys `get` saw on first use, by URL (`pdtp://HOST:PORT/PATH`, no fragment): one
/// `URL KEY` line each, `#` comments. A later fetch of the same URL without `#seed=` pins the
/// remembered key, so a tracker (or a proxy) cannot swap the seed behind it unnoticed.
#[derive(Debug, Default)]
pub struct KnownSeeds {
    keys: std::collections::BTreeMap<String, SeedKey>,
}

impl KnownSeeds {
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
            let key = key.trim().parse().map_err(|e| bad(&format!("not a seed key: {e}")))?;
            keys.insert(url.to_owned(), key);
        }
        Ok(Self { keys })
    }

    /// The key remembered for `url`.
    pub fn get(&self, url: &str) -> Option<SeedKey> {
        self.keys.get(url).copied()
    }

    /// Appends `url key` to `path` (making its directory), so the next fetch pins it.
    pub fn remember(path: &Path, url: &str, key: &SeedKey) -> Result<(), String> {
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
