//! What an output name means, decided once for `-o`, `COPY ... TO` and the catalogue's directory.
//!
//! - `-`, `/dev/stdout` (`/dev/fd/1`, `/proc/self/fd/1`): standard output; `/dev/stderr` (`/dev/fd/2`,
//!   `/proc/self/fd/2`): standard error. Written as they are, whatever they are open on (a terminal, a pipe, a file).
//! - An existing FIFO or character device (`/dev/null`, `/dev/stderr`, a named pipe): streamed into; it cannot be
//!   replaced, so it is not atomic. Block devices and sockets are refused.
//! - A local file: symlinks are followed (the link stays, its target is replaced); a dangling link is refused, like
//!   `cp` does. The file is staged beside the target and renamed over it.
//! - `scheme://bucket/key` (s3, gs, az, ...): the key is the text after `bucket/`, literally (`#`, `?`, `%` and spaces
//!   included, as in the AWS CLI). A URL without a bucket or without a key, or with an empty, `.` or `..` segment, is
//!   refused, and so is an unknown scheme.
//! - `http(s)://` is read-only; an empty name, and a store's scheme without `//` (`s3:`, `s3:/bkt/key`: a typo, not a
//!   local file to create), are refused.

use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use object_store::path::Path as StorePath;
use url::Url;

use crate::error::CliError;
use crate::object_stores::OBJECT_SCHEMES;

/// A file-sized output.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Stdout,
    Stderr,
    Stream(PathBuf),
    File(PathBuf),
    Object(ObjectUrl),
}

/// An object-store location: the store's URL (`scheme://authority`) and a key taken literally.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectUrl {
    pub store: Url,
    pub key: StorePath,
}

impl ObjectUrl {
    /// `scheme://authority/rest`, with `rest` literal; `rest` may be empty (the bucket's root).
    fn parse(text: &str) -> Result<Self, CliError> {
        let (scheme, rest) = text.split_once("://").expect("a URL");
        let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
        if matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
            return Err(CliError::usage(format!("'{text}': http(s) locations are read-only; write to a file or s3://")));
        }
        if !OBJECT_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
            return Err(CliError::usage(format!(
                "'{text}': unsupported storage scheme '{scheme}://' (outputs go to files, {})",
                OBJECT_SCHEMES.map(|s| format!("{s}://")).join(", ")
            )));
        }
        if authority.is_empty() {
            return Err(CliError::usage(format!("'{text}' names no bucket: use {scheme}://BUCKET/KEY")));
        }
        if key.chars().any(char::is_control) {
            return Err(CliError::usage(format!("'{}': control characters in an object key", text.escape_debug())));
        }
        let segments: Vec<&str> = key.strip_suffix('/').unwrap_or(key).split('/').collect();
        if !key.is_empty() && segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
            return Err(CliError::usage(format!("'{text}': an object key has no empty, '.' or '..' parts")));
        }
        let store = Url::parse(&format!("{scheme}://{authority}"))
            .map_err(|e| CliError::usage(format!("'{text}': invalid bucket: {e}")))?;
        let key = StorePath::parse(key).map_err(|e| CliError::usage(format!("'{text}': invalid object key: {e}")))?;
        Ok(Self { store, key })
    }
}

fn is_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| !scheme.contains('/'))
}

/// An empty name, or a store's scheme without its `//` (`s3:`, `s3:/bkt/key`), is not a local file to create.
fn refuse_non_names(text: &str) -> Result<(), CliError> {
    if text.trim().is_empty() {
        return Err(CliError::usage("an empty output name: give a file, a directory or a URL"));
    }
    if let Some((scheme, rest)) = text.split_once(':') {
        let lower = scheme.to_ascii_lowercase();
        if !rest.starts_with("//") && (OBJECT_SCHEMES.contains(&lower.as_str()) || matches!(lower.as_str(), "http" | "https" | "file")) {
            let path = rest.trim_start_matches('/');
            return Err(CliError::usage(format!("'{text}' is neither a URL nor a file name: did you mean {scheme}://{path}?")));
        }
    }
    Ok(())
}

/// The kind of an existing local node, following symlinks, and the path to write: the end of the links for a file or
/// a directory (replaced there), the name itself for anything else (a `/proc/self/fd` link to a pipe names no path);
/// `None` if nothing is there.
fn existing(path: &Path, text: &str) -> Result<Option<(PathBuf, FileType)>, CliError> {
    let link = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::output(format!("{text}: {e}"))),
    };
    if !link.file_type().is_symlink() {
        return Ok(Some((path.to_path_buf(), link.file_type())));
    }
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::usage(format!("'{text}' is a symlink to nothing: not writing through a dangling link")));
        }
        Err(e) => return Err(CliError::usage(format!("'{text}' is a symlink that cannot be followed: {e}"))),
    };
    if !(meta.is_file() || meta.is_dir()) {
        return Ok(Some((path.to_path_buf(), meta.file_type())));
    }
    let resolved = std::fs::canonicalize(path).map_err(|e| CliError::output(format!("{text}: {e}")))?;
    Ok(Some((resolved, meta.file_type())))
}

fn absolute(text: &str) -> Result<PathBuf, CliError> {
    std::path::absolute(text).map_err(|e| CliError::output(format!("{text}: {e}")))
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, CliError> {
        refuse_non_names(text)?;
        match text {
            "-" | "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1" => return Ok(Self::Stdout),
            "/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2" => return Ok(Self::Stderr),
            _ => {}
        }
        if is_url(text) {
            if let Some(path) = text.strip_prefix("file://") {
                return Self::parse(path);
            }
            let url = ObjectUrl::parse(text)?;
            if url.key.as_ref().is_empty() {
                return Err(CliError::usage(format!("'{text}' names a bucket, not an object: add a key")));
            }
            if text.ends_with('/') {
                return Err(CliError::usage(format!("'{text}' names a directory; give a file name")));
            }
            return Ok(Self::Object(url));
        }
        if text.ends_with('/') || matches!(Path::new(text).file_name(), None) {
            return Err(CliError::usage(format!("'{text}' names a directory; give a file name")));
        }
        let path = absolute(text)?;
        match existing(&path, text)? {
            None => Ok(Self::File(path)),
            Some((path, kind)) if kind.is_file() => Ok(Self::File(path)),
            Some((_, kind)) if kind.is_dir() => {
                Err(CliError::usage(format!("'{text}' is a directory; give a file name")))
            }
            Some((path, kind)) if kind.is_fifo() || kind.is_char_device() => Ok(Self::Stream(path)),
            Some(_) => Err(CliError::usage(format!("'{text}' is not a regular file, a FIFO or a character device"))),
        }
    }
}

/// A directory-sized output (the catalogue's three files, a `COPY` to a directory).
#[derive(Debug, Clone, PartialEq)]
pub enum DirTarget {
    /// A local directory, symlinks resolved (it may not exist yet).
    Local(PathBuf),
    /// An object-store prefix (possibly the bucket's root).
    Object(ObjectUrl),
}

impl DirTarget {
    pub fn parse(text: &str) -> Result<Self, CliError> {
        refuse_non_names(text)?;
        if text == "-" {
            return Err(CliError::usage("'-' (stdout) cannot hold several files: give a directory"));
        }
        if is_url(text) {
            if let Some(path) = text.strip_prefix("file://") {
                return Self::parse(path);
            }
            return Ok(Self::Object(ObjectUrl::parse(text)?));
        }
        let path = absolute(text)?;
        match existing(&path, text)? {
            Some((path, kind)) if kind.is_dir() => Ok(Self::Local(path)),
            Some(_) => Err(CliError::usage(format!("'{text}' exists and is not a directory"))),
            None => Ok(Self::Local(path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(text: &str) -> String {
        let e = Target::parse(text).unwrap_err();
        assert_eq!(e.class, crate::error::ErrorClass::Usage, "{text}: {}", e.message);
        e.message
    }

    #[test]
    fn object_keys_are_literal() {
        for key in ["run#3/x.csv", "res?x=1.csv", "a%20b.csv", "sp ace.csv", "ünï.csv"] {
            let Target::Object(url) = Target::parse(&format!("s3://bkt/{key}")).unwrap() else { panic!() };
            assert_eq!((url.store.as_str(), url.key.as_ref()), ("s3://bkt", key));
        }
        assert!(usage("s3://").contains("names no bucket"));
        assert!(usage("s3:///key.csv").contains("names no bucket"));
        assert!(usage("s3://bkt").contains("names a bucket"));
        assert!(usage("s3://bkt/").contains("names a bucket"));
        assert!(usage("s3://bkt/dir/").contains("directory"));
        for bad in ["s3://bkt/a//b", "s3://bkt/./b", "s3://bkt/a/../b", "s3://bkt/a\nb"] {
            usage(bad);
        }
        assert!(usage("https://host/x.csv?sig=1").contains("read-only"));
        assert!(usage("").contains("empty"));
        assert!(usage("  ").contains("empty"));
    }

    #[test]
    fn local_targets_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.csv");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let dangling = dir.path().join("dangling.csv");
        std::os::unix::fs::symlink(dir.path().join("missing"), &dangling).unwrap();
        let canonical = std::fs::canonicalize(&file).unwrap();
        assert_eq!(Target::parse(link.to_str().unwrap()).unwrap(), Target::File(canonical));
        assert!(usage(dangling.to_str().unwrap()).contains("dangling"));
        assert!(usage(dir.path().to_str().unwrap()).contains("directory"));
        assert_eq!(Target::parse("-").unwrap(), Target::Stdout);
        assert_eq!(Target::parse("/dev/stdout").unwrap(), Target::Stdout);
        assert_eq!(Target::parse("/proc/self/fd/2").unwrap(), Target::Stderr);
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let fifo_link = dir.path().join("fifo-link");
        std::os::unix::fs::symlink(&fifo, &fifo_link).unwrap();
        assert_eq!(Target::parse(fifo_link.to_str().unwrap()).unwrap(), Target::Stream(fifo_link.clone()));
        let looped = dir.path().join("loop.csv");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        assert!(usage(looped.to_str().unwrap()).contains("cannot be followed"));
        for typo in ["s3:", "s3:/bkt/x.csv", "GS:bkt/x", "file:x.csv", "https:/h/x"] {
            assert!(usage(typo).contains("did you mean"), "{typo}");
        }
        assert!(usage("foo://b/k.csv").contains("unsupported storage scheme 'foo://'"));
        assert!(DirTarget::parse("s3:").is_err() && DirTarget::parse("ftp://h/d").is_err());
        assert_eq!(Target::parse("/dev/null").unwrap(), Target::Stream("/dev/null".into()));
        assert_eq!(DirTarget::parse(link.to_str().unwrap()).unwrap_err().class, crate::error::ErrorClass::Usage);
        assert!(DirTarget::parse("s3://").is_err() && DirTarget::parse("").is_err() && DirTarget::parse("-").is_err());
        let Ok(DirTarget::Object(url)) = DirTarget::parse("s3://bkt") else { panic!() };
        assert_eq!(url.key.as_ref(), "");
    }
}
