//! Reading and writing f32 tensors with the `safetensors` crate.

use super::CheckpointError;
use safetensors::tensor::{Dtype, SafeTensors, TensorView, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// A borrowed f32 tensor to be written (little-endian, as safetensors requires).
pub(super) struct F32Tensor<'a> {
    pub shape: Vec<usize>,
    pub data: &'a [f32],
}

impl View for F32Tensor<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Converted one tensor at a time while the file is written, so saving
    /// never holds a second copy of the whole model.
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.data.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// Writes `tensors` to `path` with the `format = pt` metadata that
/// `transformers` expects.
pub(super) fn write_tensors(
    path: &Path,
    tensors: Vec<(String, F32Tensor<'_>)>,
) -> Result<(), CheckpointError> {
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(tensors, Some(metadata), path).map_err(|source| {
        CheckpointError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    match_umask(path)
}

/// Gives `path` the permissions of a newly created file (0666 less the
/// process's umask, as for every other file cptrain writes): `safetensors`
/// writes through a private temporary file (0600), which other users of a
/// shared cluster filesystem could not read.
#[cfg(unix)]
fn match_umask(path: &Path) -> Result<(), CheckpointError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = 0o666 & !process_umask();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        CheckpointError::Io {
            action: "set permissions of",
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn match_umask(_path: &Path) -> Result<(), CheckpointError> {
    Ok(())
}

/// The umask, read without changing it (`/proc/self/status`); 022 where
/// that is unavailable.
#[cfg(unix)]
fn process_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// The whole file's bytes, once it is known to be a regular file whose
/// safetensors header fits in it (nothing is read past its length).
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let io = |source| CheckpointError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let (file, len) = crate::regular_file::open_regular(path).map_err(io)?;
    let mut bytes = Vec::new();
    let mut file = file.take(len);
    // A file under 8 bytes is read whole and refused by the parser.
    file.by_ref().take(8).read_to_end(&mut bytes).map_err(io)?;
    if let Ok(prefix) = <[u8; 8]>::try_from(bytes.as_slice()) {
        let header = u64::from_le_bytes(prefix);
        if header > len - 8 {
            return Err(CheckpointError::HeaderBeyondFile {
                path: path.to_path_buf(),
                header,
                len,
            });
        }
    }
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Parses bytes read from `path`.
pub(super) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>, CheckpointError> {
    SafeTensors::deserialize(bytes).map_err(|source| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// Which element types a reader converts to f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dtypes {
    /// Only F32 (checkpoints written by cptrain).
    F32Only,
    /// F32, F16 or BF16 (imported weights).
    Floats,
}

/// Copies the first `dst.len()` elements of `view` into `dst`, converting to f32.
pub(super) fn copy_f32(
    path: &Path,
    name: &str,
    view: &TensorView<'_>,
    dtypes: Dtypes,
    dst: &mut [f32],
) -> Result<(), CheckpointError> {
    let bytes = view.data();
    let accepted = match dtypes {
        Dtypes::F32Only => "F32",
        Dtypes::Floats => "F32, F16 or BF16",
    };
    match (view.dtype(), dtypes) {
        (Dtype::F32, _) => {
            dst.iter_mut()
                .zip(bytes.chunks_exact(4))
                .for_each(|(d, b)| *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        }
        (Dtype::F16, Dtypes::Floats) => {
            dst.iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(d, b)| *d = half::f16::from_le_bytes([b[0], b[1]]).to_f32());
        }
        (Dtype::BF16, Dtypes::Floats) => {
            dst.iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(d, b)| *d = half::bf16::from_le_bytes([b[0], b[1]]).to_f32());
        }
        (found, _) => {
            return Err(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: format!("{found:?}"),
                accepted,
            });
        }
    }
    Ok(())
}
