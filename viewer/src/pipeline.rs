//! Wires the pieces every mode needs: stats, clock, picture slot, decode thread, command queue
//! and the session driver.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tsuitate_protocol::{Limits, ViewerToGateway};

use crate::clock::ClockOffset;
use crate::decode::{spawn_decoder, DecodeError, DecoderShared, FrameSlot};
use crate::report::Stats;
use crate::session::{SessionDriver, SessionEvent, COMMAND_QUEUE};

/// Shared handles for the UI or the script runner.
#[derive(Clone)]
pub struct Pipeline {
    /// Counters.
    pub stats: Arc<Stats>,
    /// Gateway clock estimate.
    pub clock: Arc<ClockOffset>,
    /// Newest decoded picture.
    pub slot: Arc<FrameSlot>,
    /// Commands toward the gateway (input, resize, logout). Dropping every sender ends the
    /// session.
    pub commands: mpsc::Sender<ViewerToGateway>,
}

/// Start the decode thread and build the driver that owns the connection side.
pub fn start(
    limits: Limits,
    on_picture: Box<dyn Fn() + Send>,
    events: Box<dyn FnMut(SessionEvent) + Send>,
) -> Result<(Pipeline, SessionDriver, JoinHandle<()>), DecodeError> {
    let stats = Arc::new(Stats::default());
    let clock = Arc::new(ClockOffset::default());
    let slot = Arc::new(FrameSlot::default());
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    // A weak sender: the decoder must not keep the command queue open after the UI is gone.
    let weak = tx.downgrade();
    let (decoder, thread) = spawn_decoder(DecoderShared {
        slot: slot.clone(),
        stats: stats.clone(),
        clock: clock.clone(),
        limits,
        on_picture,
        on_need_keyframe: Box::new(move || {
            if let Some(tx) = weak.upgrade() {
                let _ = tx.try_send(ViewerToGateway::KeyframeRequest);
            }
        }),
    })?;
    let driver = SessionDriver {
        commands: rx,
        decoder,
        stats: stats.clone(),
        clock: clock.clone(),
        events,
    };
    Ok((
        Pipeline {
            stats,
            clock,
            slot,
            commands: tx,
        },
        driver,
        thread,
    ))
}
