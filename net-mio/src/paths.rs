//! `pdtp://` URLs and the rules that keep every served path inside `file_root`.
//!
//! A content path (the `/path` of `pdtp://host[:port]/path`, and `Manifest::path`) is relative,
//! in canonical form, and never leaves the root:
//!
//! - not empty, not absolute (no leading `/`), no NUL, no backslash;
//! - no `..`, `.` or empty components (so one file has exactly one name);
//! - after joining to the canonical `file_root` and resolving every symlink, the result must
//!   still be under the canonical root, and be a regular file.
//!
//! The lexical checks run first, so a hostile name is refused before the file system is
//! touched. Percent-escapes in URLs are decoded *before* the checks (`%2e%2e` is `..`).

use pdtp_core::signing::SeedKey;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::secure::LinkKey;

/// The tracker port a URL without one means (the original's default).
pub const DEFAULT_PORT: u16 = 6086;

/// A parsed `pdtp://host[:port]/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdtpUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Tracker port ([`DEFAULT_PORT`] when absent).
    pub port: u16,
    /// Content path, relative and checked by [`check_relative`] (no leading `/`).
    pub path: String,
    /// The seed key pinned by a `#seed=KEY` fragment: the manifest must be signed by it.
    pub seed_key: Option<SeedKey>,
    /// The tracker's link key pinned by a `#key=KEY` fragment: the tracker must prove it.
    pub tracker_key: Option<LinkKey>,
}

/// Why a URL is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `pdtp://`.
    #[error("'{url}': the scheme must be pdtp:// (as in pdtp://host:6086/file.mp4)")]
    BadScheme {
        /// The URL as given.
        url: String,
    },
    /// Nothing between `pdtp://` and the path.
    #[error("'{url}': missing host (as in pdtp://host:6086/file.mp4)")]
    MissingHost {
        /// The URL as given.
        url: String,
    },
    /// The host contains characters a host name cannot have.
    #[error("'{url}': bad host '{host}'")]
    BadHost {
        /// The URL as given.
        url: String,
        /// The host text.
        host: String,
    },
    /// The port is not a number in 1..=65535.
    #[error("'{url}': bad port '{port}' (a number from 1 to 65535)")]
    BadPort {
        /// The URL as given.
        url: String,
        /// The port text.
        port: String,
    },
    /// A fragment other than `seed=` and `key=`, each with 64 hex digits, joined by `&`.
    #[error(
        "'{url}': the fragment pins keys, 64 hex digits each, as the seed and the tracker print at start: #seed=KEY, #key=KEY or #seed=KEY&key=KEY"
    )]
    BadFragment {
        /// The URL as given.
        url: String,
    },
    /// A bad percent-escape, or bytes that are not UTF-8 once decoded.
    #[error("'{url}': bad percent-escape in the path")]
    BadEscape {
        /// The URL as given.
        url: String,
    },
    /// The path breaks the path rules.
    #[error("'{url}': {source}")]
    BadPath {
        /// The URL as given.
        url: String,
        /// Which rule.
        source: PathError,
    },
}

/// Why a content path is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The empty path names no file.
    #[error("empty path")]
    Empty,
    /// A leading `/`.
    #[error("path '{0}' is absolute; paths are relative to file_root")]
    Absolute(String),
    /// A `..` component.
    #[error("path '{0}' contains '..'")]
    DotDot(String),
    /// A `.` or empty component (`a/./b`, `a//b`, `a/`).
    #[error("path '{0}' is not in canonical form (no '.', empty components or trailing '/')")]
    NotCanonical(String),
    /// A NUL byte.
    #[error("path contains a NUL byte")]
    Nul,
    /// A backslash (a Windows separator in disguise).
    #[error("path '{0}' contains a backslash")]
    Backslash(String),
    /// The path resolves (through a symlink) outside the root.
    #[error("path '{0}' leads outside file_root")]
    Escapes(String),
    /// The path does not name an existing file.
    #[error("path '{path}': {source}")]
    NotFound {
        /// The relative path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The path names a directory or something else that is not a regular file.
    #[error("path '{0}' is not a regular file")]
    NotAFile(String),
    /// The root itself is unusable.
    #[error("file_root '{root}': {source}")]
    Root {
        /// The root as configured.
        root: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A canonicalized `file_root`, through which every served path is resolved.
#[derive(Clone, Debug)]
pub struct FileRoot {
    canonical: PathBuf,
}

impl PdtpUrl {
    /// Parses `pdtp://host[:port]/path[#seed=KEY][&key=KEY]`; IPv6 hosts go in brackets
    /// (`pdtp://[::1]:6086/a`).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let owned = || url.to_owned();
        let (url_part, fragment) = match url.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (url, None),
        };
        let (mut seed_key, mut tracker_key) = (None, None);
        for pin in fragment.map(|f| f.split('&')).into_iter().flatten() {
            let pinned = match pin.split_once('=') {
                Some(("seed", k)) if seed_key.is_none() => k.parse().ok().map(|k| seed_key = Some(k)),
                Some(("key", k)) if tracker_key.is_none() => k.parse().ok().map(|k| tracker_key = Some(k)),
                _ => None,
            };
            pinned.ok_or_else(|| UrlError::BadFragment { url: owned() })?;
        }
        let rest = url_part
            .strip_prefix("pdtp://")
            .or_else(|| url.get(..7).filter(|s| s.eq_ignore_ascii_case("pdtp://")).map(|_| &url[7..]))
            .ok_or_else(|| UrlError::BadScheme { url: owned() })?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| UrlError::MissingHost { url: owned() })?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(UrlError::BadPort { url: owned(), port: after.to_owned() }),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::MissingHost { url: owned() });
        }
        if host.contains(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))) {
            return Err(UrlError::BadHost { url: owned(), host: host.to_owned() });
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(UrlError::BadPort { url: owned(), port: p.to_owned() }),
            },
        };
        let path = percent_decode(path).ok_or_else(|| UrlError::BadEscape { url: owned() })?;
        check_relative(&path).map_err(|source| UrlError::BadPath { url: owned(), source })?;
        Ok(Self { host: host.to_owned(), port, path, seed_key, tracker_key })
    }
}

impl fmt::Display for PdtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "pdtp://{host}:{}/", self.port)?;
        for b in self.path.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        let mut sep = '#';
        if let Some(key) = self.seed_key {
            write!(f, "{sep}seed={key}")?;
            sep = '&';
        }
        if let Some(key) = self.tracker_key {
            write!(f, "{sep}key={key}")?;
        }
        Ok(())
    }
}

/// Checks a content path lexically (see the module docs); touches no file.
pub fn check_relative(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash(path.to_owned()));
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute(path.to_owned()));
    }
    for part in path.split('/') {
        match part {
            ".." => return Err(PathError::DotDot(path.to_owned())),
            "" | "." => return Err(PathError::NotCanonical(path.to_owned())),
            _ => {}
        }
    }
    Ok(())
}

impl FileRoot {
    /// Canonicalizes `root`, which must be an existing directory.
    pub fn new(root: &Path) -> Result<Self, PathError> {
        let err = |source| PathError::Root { root: root.to_owned(), source };
        let canonical = root.canonicalize().map_err(err)?;
        if !canonical.is_dir() {
            return Err(err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory")));
        }
        Ok(Self { canonical })
    }

    /// The canonical root.
    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Resolves a content path to the canonical path of a regular file under the root.
    ///
    /// There is a window between this check and opening the file in which a local user who
    /// can write under the root could swap in a symlink; the root is the operator's own
    /// directory, so that is out of scope.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, PathError> {
        check_relative(rel)?;
        let joined = self.canonical.join(rel);
        let real =
            joined.canonicalize().map_err(|source| PathError::NotFound { path: rel.to_owned(), source })?;
        if !real.starts_with(&self.canonical) {
            return Err(PathError::Escapes(rel.to_owned()));
        }
        let meta = real.metadata().map_err(|source| PathError::NotFound { path: rel.to_owned(), source })?;
        if !meta.is_file() {
            return Err(PathError::NotAFile(rel.to_owned()));
        }
        Ok(real)
    }

    /// Every publishable file under the root, as sorted content paths.
    ///
    /// Does not descend into symlinked directories (no loops); includes a symlinked file
    /// only when it resolves inside the root. Names that break the path rules (or are not
    /// UTF-8) are skipped with a warning.
    pub fn list_files(&self) -> Result<Vec<String>, PathError> {
        let mut out = Vec::new();
        let mut dirs = vec![PathBuf::new()];
        while let Some(dir) = dirs.pop() {
            let abs = self.canonical.join(&dir);
            let entries =
                std::fs::read_dir(&abs).map_err(|source| PathError::Root { root: abs.clone(), source })?;
            for entry in entries {
                let entry = entry.map_err(|source| PathError::Root { root: abs.clone(), source })?;
                let rel = dir.join(entry.file_name());
                let Some(name) = rel.to_str().filter(|n| check_relative(n).is_ok()) else {
                    tracing::warn!(path = %rel.display(), "skipping a file whose name cannot be a content path");
                    continue;
                };
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    dirs.push(rel);
                } else if ft.is_file() || (ft.is_symlink() && self.resolve(name).is_ok()) {
                    out.push(name.to_owned());
                } else if ft.is_symlink() {
                    tracing::warn!(
                        path = name,
                        "skipping a symlink that leads outside file_root or to no file"
                    );
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Decodes `%XX` escapes; `None` on a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
