//! The relay benchmark's gateway: the test kit's fixture (PKI by the gateway's own CA code, a
//! user, port 0 everywhere) configured for the benchmark's frames.

use tsuitate_testkit::fixture::Fixture;

/// The agent id the bench agent's certificate carries.
pub const AGENT_ID: &str = "bench-agent";
/// The user the bench viewer logs in as (the kit fixture's password).
pub const USER: &str = "bench";

/// The most frames per second the gateway admits per session that every gateway version
/// accepts in its configuration. Bursts stay below it (see `relay::BURST_FRAMES`).
pub const MAX_FPS: u32 = 240;

/// A gateway configuration for frames of `width`×`height`.
pub fn fixture(width: u16, height: u16) -> Fixture {
    let mut fx = Fixture::new(&[AGENT_ID], &[USER]);
    fx.config.session.default_width = width;
    fx.config.session.default_height = height;
    fx.config.limits.max_fps = MAX_FPS;
    // A burst must not be cut by the slow-viewer rule: the queue holds a whole burst.
    fx.config.session.viewer_queue_frames = 1024;
    // The worst case of such a queue (1024 × max_frame_bytes) is far beyond the default
    // memory budget; the benchmark's frames are small and its sessions few.
    fx.config.limits.memory_budget_mb = 1 << 20;
    fx.config.session.shutdown_drain = std::time::Duration::from_secs(1);
    fx
}
