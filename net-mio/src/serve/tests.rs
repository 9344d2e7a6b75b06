use super::*;

#[test]
fn single_ranges_select_the_bytes_they_name() {
    let size = 1000;
    assert_eq!(parse_range(None, size), RangeSpec::Full);
    assert_eq!(parse_range(Some("bytes=0-99"), size), RangeSpec::Part(0, 99));
    assert_eq!(parse_range(Some("bytes=500-"), size), RangeSpec::Part(500, 999));
    assert_eq!(parse_range(Some("bytes=-100"), size), RangeSpec::Part(900, 999));
    // Past the end is clipped; a suffix longer than the content is the whole of it.
    assert_eq!(parse_range(Some("bytes=990-5000"), size), RangeSpec::Part(990, 999));
    assert_eq!(parse_range(Some("bytes=-5000"), size), RangeSpec::Part(0, 999));
    assert_eq!(parse_range(Some(" Bytes = 7 - 7 "), size), RangeSpec::Part(7, 7));
}

#[test]
fn ranges_that_select_nothing_are_unsatisfiable() {
    assert_eq!(parse_range(Some("bytes=1000-"), 1000), RangeSpec::Unsatisfiable);
    assert_eq!(parse_range(Some("bytes=1000-2000"), 1000), RangeSpec::Unsatisfiable);
    assert_eq!(parse_range(Some("bytes=-0"), 1000), RangeSpec::Unsatisfiable);
    assert_eq!(parse_range(Some("bytes=0-"), 0), RangeSpec::Unsatisfiable);
}

#[test]
fn other_range_headers_are_ignored() {
    // Several ranges: the whole content (no multipart answers); malformed: ignored.
    for h in ["bytes=0-1,5-6", "items=0-1", "bytes=5-1", "bytes=a-b", "bytes=-", "bytes", "bytes=1-2-3"] {
        assert_eq!(parse_range(Some(h), 1000), RangeSpec::Full, "{h}");
    }
}

#[test]
fn media_types_follow_the_extension() {
    assert_eq!(media_type("show.mp4"), "video/mp4");
    assert_eq!(media_type("dir/Show.MKV"), "video/x-matroska");
    assert_eq!(media_type("a/b/seg.ts"), "video/mp2t");
    assert_eq!(media_type("x.webm"), "video/webm");
    assert_eq!(media_type("x.m4s"), "video/iso.segment");
    assert_eq!(media_type("x.mp3"), "audio/mpeg");
    assert_eq!(media_type("x.ogg"), "audio/ogg");
    assert_eq!(media_type("x.m3u8"), "application/vnd.apple.mpegurl");
    assert_eq!(media_type("noext"), "application/octet-stream");
    assert_eq!(media_type("dir.mp4/noext"), "application/octet-stream");
    assert_eq!(media_type("x.bin"), "application/octet-stream");
}
