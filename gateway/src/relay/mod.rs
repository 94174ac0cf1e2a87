//! The relay: sans-IO policy for what crosses in each direction.

pub mod input;
pub mod video;
