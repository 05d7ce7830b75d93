//! Reading a file that a hostile or careless setup may have pointed elsewhere: only a
//! regular file is read (a symlink is followed, as Kubernetes' atomic writer uses them, but
//! its target must be a regular file), it is opened without blocking, and read through a
//! hard cap. A FIFO, a device such as `/dev/zero`, or a directory is refused, never read.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("not a regular file but {0}")]
    NotAFile(&'static str),
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A PEM bundle larger than this is not a CA file.
pub(crate) const MAX_PEM_BYTES: u64 = 1 << 20;

impl ReadError {
    /// Short, for config problems: an I/O error by its kind ("entity not found").
    pub(crate) fn brief(&self) -> String {
        match self {
            ReadError::Io(e) => e.kind().to_string(),
            other => other.to_string(),
        }
    }
}

/// The file's contents, at most `max` bytes of them; see the module doc.
pub(crate) fn read(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    // Checked before opening, so that opening never blocks (a FIFO) or touches a device…
    check(&std::fs::metadata(path)?, max)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // …and again on what was opened, in case the path was swapped in between.
    let len = check(&file.metadata()?, max)?;
    let mut body = Vec::with_capacity(usize::try_from(len.min(max)).unwrap_or(0));
    read_capped(file, max, &mut body)?;
    Ok(body)
}

/// The length of a regular file of at most `max` bytes.
fn check(metadata: &Metadata, max: u64) -> Result<u64, ReadError> {
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return match metadata.len() {
            len if len > max => Err(ReadError::TooLarge(max)),
            len => Ok(len),
        };
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "something else"
    };
    Err(ReadError::NotAFile(what))
}

/// Reads at most `max` bytes; a file that grew past `max` since it was checked is refused.
fn read_capped(file: File, max: u64, body: &mut Vec<u8>) -> Result<(), ReadError> {
    file.take(max.saturating_add(1)).read_to_end(body)?;
    if body.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read_through_symlinks_and_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, b"{}").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read(&link, 16).unwrap(), b"{}");
        assert!(matches!(read(&file, 1), Err(ReadError::TooLarge(1))));

        // Issue 10, repro 3: a symlink to /dev/zero passed the size check and was read on.
        let zero = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read(&zero, 16),
            Err(ReadError::NotAFile("a character device"))
        ));
        assert!(matches!(
            read(dir.path(), 16),
            Err(ReadError::NotAFile("a directory"))
        ));
        let dangling = dir.path().join("gone.json");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        assert!(matches!(read(&dangling, 16), Err(ReadError::Io(_))));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(matches!(
            read(&fifo, 16),
            Err(ReadError::NotAFile("a FIFO"))
        ));
    }
}
