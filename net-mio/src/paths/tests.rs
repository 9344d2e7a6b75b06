use std::os::unix::fs::symlink;

use super::*;

#[test]
fn parses_urls() {
    let u = PdtpUrl::parse("pdtp://example.org/show.mp4").unwrap();
    assert_eq!(
        u,
        PdtpUrl {
            host: "example.org".into(),
            port: 6086,
            path: "show.mp4".into(),
            seed_key: None,
            tracker_key: None
        }
    );
    let u = PdtpUrl::parse("pdtp://127.0.0.1:7000/a/b%20c.ts").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 7000, "a/b c.ts"));
    assert_eq!(u.to_string(), "pdtp://127.0.0.1:7000/a/b%20c.ts");
    let u = PdtpUrl::parse("PDTP://[::1]:9/x").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("::1", 9));
    assert_eq!(u.to_string(), "pdtp://[::1]:9/x");
    assert_eq!(PdtpUrl::parse(&u.to_string()).unwrap(), u);
}

#[test]
fn a_seed_fragment_pins_the_seed_key() {
    let key = "ab".repeat(32);
    let u = PdtpUrl::parse(&format!("pdtp://h:7/a.ts#seed={key}")).unwrap();
    assert_eq!(u.seed_key, Some(key.parse().unwrap()));
    assert_eq!(u.path, "a.ts");
    assert_eq!(u.to_string(), format!("pdtp://h:7/a.ts#seed={key}"));
    let e = |s: &str| PdtpUrl::parse(s).unwrap_err();
    assert!(matches!(e("pdtp://h/a#seed=abc"), UrlError::BadFragment { .. }));
    assert!(matches!(e(&format!("pdtp://h/a#other={key}")), UrlError::BadFragment { .. }));
    assert!(matches!(e(&format!("pdtp://h/a#seed={key}&seed={key}")), UrlError::BadFragment { .. }));
    assert!(matches!(e("pdtp://h/a#"), UrlError::BadFragment { .. }));
}

#[test]
fn a_key_fragment_pins_the_trackers_link_key() {
    let (seed, link) = ("ab".repeat(32), "cd".repeat(32));
    let u = PdtpUrl::parse(&format!("pdtp://h:7/a.ts#key={link}")).unwrap();
    assert_eq!((u.seed_key, u.tracker_key), (None, Some(link.parse().unwrap())));
    assert_eq!(u.to_string(), format!("pdtp://h:7/a.ts#key={link}"));
    // Both, in either order; printed seed first.
    for url in
        [format!("pdtp://h:7/a.ts#seed={seed}&key={link}"), format!("pdtp://h:7/a.ts#key={link}&seed={seed}")]
    {
        let u = PdtpUrl::parse(&url).unwrap();
        assert_eq!((u.seed_key, u.tracker_key), (Some(seed.parse().unwrap()), Some(link.parse().unwrap())));
        assert_eq!(u.to_string(), format!("pdtp://h:7/a.ts#seed={seed}&key={link}"));
    }
    assert!(matches!(PdtpUrl::parse("pdtp://h/a#key=12"), Err(UrlError::BadFragment { .. })));
}

#[test]
fn refuses_bad_urls_with_a_reason() {
    let e = |s: &str| PdtpUrl::parse(s).unwrap_err();
    assert!(matches!(e("http://h/a"), UrlError::BadScheme { .. }));
    assert!(matches!(e("h/a"), UrlError::BadScheme { .. }));
    assert!(matches!(e("pdtp:///a"), UrlError::MissingHost { .. }));
    assert!(matches!(e("pdtp://:6086/a"), UrlError::MissingHost { .. }));
    assert!(matches!(e("pdtp://user@h/a"), UrlError::BadHost { .. }));
    assert!(matches!(e("pdtp://h h/a"), UrlError::BadHost { .. }));
    assert!(matches!(e("pdtp://h:http/a"), UrlError::BadPort { .. }));
    assert!(matches!(e("pdtp://h:0/a"), UrlError::BadPort { .. }));
    assert!(matches!(e("pdtp://h:70000/a"), UrlError::BadPort { .. }));
    assert!(matches!(e("pdtp://h:+80/a"), UrlError::BadPort { .. }));
    assert!(matches!(e("pdtp://h/a%2"), UrlError::BadEscape { .. }));
    assert!(matches!(e("pdtp://h/a%ff"), UrlError::BadEscape { .. }));
    assert!(matches!(e("pdtp://h"), UrlError::BadPath { source: PathError::Empty, .. }));
    assert!(matches!(e("pdtp://h/../etc/passwd"), UrlError::BadPath { source: PathError::DotDot(_), .. }));
    assert!(matches!(e("pdtp://h/%2e%2e/x"), UrlError::BadPath { source: PathError::DotDot(_), .. }));
    assert!(matches!(e("pdtp://h//etc/passwd"), UrlError::BadPath { source: PathError::Absolute(_), .. }));
    assert!(matches!(e("pdtp://h/a%00b"), UrlError::BadPath { source: PathError::Nul, .. }));
    assert!(matches!(e("pdtp://h/a\\..\\b"), UrlError::BadPath { source: PathError::Backslash(_), .. }));
    assert_eq!(
        e("http://h/a").to_string(),
        "'http://h/a': the scheme must be pdtp:// (as in pdtp://host:6086/file.mp4)"
    );
    assert_eq!(e("pdtp://h/../x").to_string(), "'pdtp://h/../x': path '../x' contains '..'");
}

#[test]
fn lexical_rules() {
    assert!(check_relative("a/b.mp4").is_ok());
    assert!(check_relative("..a/b..").is_ok(), "dots inside a name are fine");
    for bad in ["", "/a", "a/../b", "..", "a/./b", "a//b", "a/", "./a", "a\0b", "a\\b"] {
        assert!(check_relative(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn resolves_inside_and_refuses_symlink_escapes() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("a.bin"), b"a").unwrap();
    std::fs::write(root.join("sub/b.bin"), b"b").unwrap();
    symlink(outside.path().join("secret"), root.join("leak")).unwrap();
    symlink(outside.path(), root.join("leakdir")).unwrap();
    symlink(root.join("a.bin"), root.join("sub/alias")).unwrap();
    symlink("../a.bin", root.join("sub/rel-alias")).unwrap();
    symlink("nowhere", root.join("dangling")).unwrap();

    let fr = FileRoot::new(&root).unwrap();
    let canon_root = root.canonicalize().unwrap();
    assert_eq!(fr.resolve("a.bin").unwrap(), canon_root.join("a.bin"));
    assert_eq!(fr.resolve("sub/b.bin").unwrap(), canon_root.join("sub/b.bin"));
    assert_eq!(
        fr.resolve("sub/alias").unwrap(),
        canon_root.join("a.bin"),
        "a symlink inside the root is fine"
    );
    assert_eq!(fr.resolve("sub/rel-alias").unwrap(), canon_root.join("a.bin"));

    assert!(matches!(fr.resolve("leak"), Err(PathError::Escapes(_))));
    assert!(matches!(fr.resolve("leakdir/secret"), Err(PathError::Escapes(_))));
    assert!(matches!(fr.resolve("../root/a.bin"), Err(PathError::DotDot(_))));
    let abs = outside.path().join("secret");
    assert!(matches!(fr.resolve(abs.to_str().unwrap()), Err(PathError::Absolute(_))));
    assert!(matches!(fr.resolve("sub"), Err(PathError::NotAFile(_))));
    assert!(matches!(fr.resolve("missing"), Err(PathError::NotFound { .. })));
    assert!(matches!(fr.resolve("dangling"), Err(PathError::NotFound { .. })));

    // Listing publishes exactly the files inside, never what the escaping links point at.
    assert_eq!(fr.list_files().unwrap(), ["a.bin", "sub/alias", "sub/b.bin", "sub/rel-alias"]);
}

#[test]
fn root_must_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    assert!(matches!(FileRoot::new(&f), Err(PathError::Root { .. })));
    let e = FileRoot::new(&dir.path().join("missing")).unwrap_err().to_string();
    assert!(e.starts_with("file_root '") && e.contains("missing"), "{e}");
}
