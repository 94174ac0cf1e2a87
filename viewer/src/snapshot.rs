//! PNG snapshots of decoded frames (headless mode only: the window stores nothing on disk).

use std::path::Path;

use thiserror::Error;

use crate::decode::DecodedFrame;

/// Why a snapshot could not be written.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// The frame's pixels do not fill its size (never for a decoded frame).
    #[error("frame of {width}x{height} has {len} bytes of RGB")]
    Size {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Bytes held.
        len: usize,
    },
    /// File system or PNG encoding.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: image::ImageError,
    },
}

/// Write `frame` as an RGB PNG.
pub fn write_png(frame: &DecodedFrame, path: &Path) -> Result<(), SnapshotError> {
    let img = image::RgbImage::from_raw(frame.width, frame.height, frame.rgb.clone()).ok_or(
        SnapshotError::Size {
            width: frame.width,
            height: frame.height,
            len: frame.rgb.len(),
        },
    )?;
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|source| SnapshotError::Write {
            path: path.display().to_string(),
            source,
        })
}
