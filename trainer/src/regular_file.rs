//! Opening the files a user names (`model.init`, token files, checkpoints)
//! without touching anything that is not a regular file: opening a FIFO
//! blocks until a writer comes, and reading `/dev/zero` never ends.

use std::fs::{File, FileType};
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Opens `path` for reading if it is a regular file (after symbolic links)
/// and returns it with its length; anything else is refused before it is
/// opened, with an error saying what it is.
pub(crate) fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    let kind = std::fs::metadata(path)?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", describe(kind)),
        ));
    }
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

/// "a directory", "a FIFO", …
fn describe(kind: FileType) -> &'static str {
    if kind.is_dir() {
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
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, [1u8, 2, 3]).unwrap();
        assert_eq!(open_regular(&file).unwrap().1, 3);
        let fifo = dir.path().join("fifo");
        let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }, 0);
        for (path, kind) in [
            (dir.path(), "a directory"),
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
        ] {
            let err = open_regular(path).unwrap_err();
            assert_eq!(err.to_string(), format!("it is {kind}, not a regular file"));
        }
    }
}
