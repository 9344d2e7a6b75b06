//! The pure parts of `get --serve`: the `Range` header and the media type.

/// What a request's `Range` header asks of a content of known size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No usable range: the whole content, `200`. An absent header, a unit other than
    /// `bytes`, a malformed one (RFC 9110 §14.2: ignore it) and several ranges (we send no
    /// `multipart/byteranges`) all land here.
    Full,
    /// Bytes `first..=last`, both inside the content: `206`.
    Part(u64, u64),
    /// A well-formed single range that selects nothing: `416`.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` against `size`.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeSpec {
    let Some(h) = header else { return RangeSpec::Full };
    let Some((unit, spec)) = h.trim().split_once('=') else { return RangeSpec::Full };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeSpec::Full };
    let num = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten()
    };
    match (a.trim().is_empty(), num(a), num(b)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(size - n.min(size), size - 1)
            }
        }
        // `a-`: from a to the end.
        (false, Some(first), None) if b.trim().is_empty() => {
            if first >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(first, size - 1)
            }
        }
        (false, Some(first), Some(last)) if first <= last => {
            if first >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Part(first, last.min(size - 1))
            }
        }
        _ => RangeSpec::Full,
    }
}

/// The media type for a content path, from its extension.
pub fn media_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "m4a" => "audio/mp4",
        "m4s" => "video/iso.segment",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "mka" => "audio/x-matroska",
        "ts" | "m2ts" | "mts" => "video/mp2t",
        "mp3" => "audio/mpeg",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "ogv" => "video/ogg",
        "avi" => "video/x-msvideo",
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "vtt" => "text/vtt",
        "srt" => "application/x-subrip",
        "txt" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}
