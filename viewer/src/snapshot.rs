//! PNG snapshots of decoded frames (headless mode only: the window stores nothing on disk).

use std::io::BufWriter;
use std::path::Path;

use thiserror::Error;

use crate::decode::DecodedFrame;

/// Why a snapshot could not be written.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// File system.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// PNG encoding.
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// Write `frame` as an RGB PNG.
pub fn write_png(frame: &DecodedFrame, path: &Path) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(BufWriter::new(file), frame.width, frame.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(&frame.rgb)?;
    w.finish()?;
    Ok(())
}
