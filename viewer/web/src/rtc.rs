//! WebRTC toward one browser (webrtc-rs 0.21): the browser offers (one `POST /offer`), we
//! answer with host candidates on the configured LGWAN address only. The gateway's H.264
//! access units are packetized as they are (RFC 6184, packetization-mode 1; no transcode) into
//! one video track; the browser's PLI/FIR come back as keyframe requests; its `input` data
//! channel carries the page's events (see `tsuitate_protocol::page`).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mux::{ice_credentials, MuxRuntime, UdpMux};
use bytes::Bytes;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, Registry,
};
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_H264};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::packetizer::Payloader;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind, TYPE_RTCP_FB_CCM,
};
use rtc::sansio::Protocol;
use thiserror::Error;
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

/// RTP payload size: the crate's own MTU (1200) less the 12-byte RTP header.
const RTP_PAYLOAD: usize = 1200 - 12;
/// How long the answer waits for candidate gathering (host candidates only: immediate).
const GATHER_WAIT: Duration = Duration::from_secs(3);
/// Our H.264 offer to match: Constrained Baseline, packetization-mode 1 (what the agents send).
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// Where ICE listens: host candidates on one LGWAN address and one UDP port shared by every
/// browser (the mux in [`crate::mux`]; docs/decisions.md D15).
#[derive(Debug)]
pub struct RtcSettings {
    mux: Arc<UdpMux>,
}

impl RtcSettings {
    /// Bind the shared port `ip:port` (port 0: any free port).
    pub async fn bind(ip: IpAddr, port: u16) -> std::io::Result<RtcSettings> {
        Ok(RtcSettings {
            mux: UdpMux::bind(SocketAddr::new(ip, port)).await?,
        })
    }

    /// The shared port every browser's media goes to.
    pub fn addr(&self) -> SocketAddr {
        self.mux.local_addr()
    }
}

/// Why a peer connection could not be set up.
#[derive(Debug, Error)]
pub enum RtcError {
    /// The browser's offer has no H.264 we can send (Constrained Baseline, mode 1).
    #[error("the browser offered no usable H.264")]
    NoH264,
    /// webrtc-rs refused (bad SDP, bind failure, ...).
    #[error("WebRTC: {0}")]
    Webrtc(String),
}

fn w(e: impl std::fmt::Display) -> RtcError {
    RtcError::Webrtc(e.to_string())
}

/// What a peer connection tells its session.
pub enum PeerEvent {
    /// The page's data channel arrived.
    DataChannel(Arc<dyn DataChannel>),
    /// ICE/DTLS connected: media flows.
    Connected,
    /// Nothing heard from the browser for a few seconds (tab closed, network down); it may
    /// come back (`Connected` again).
    Quiet,
    /// The connection failed or closed.
    Gone,
    /// The browser asked for a keyframe (PLI or FIR).
    KeyframeRequest,
}

struct Handler {
    events: mpsc::UnboundedSender<PeerEvent>,
    gathered: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let ev = match state {
            RTCPeerConnectionState::Connected => PeerEvent::Connected,
            RTCPeerConnectionState::Disconnected => PeerEvent::Quiet,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => PeerEvent::Gone,
            _ => return,
        };
        let _ = self.events.send(ev);
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let _ = self.events.send(PeerEvent::DataChannel(dc));
    }
}

/// Passes the browser's PLI and FIR up to the application (webrtc-rs delivers inbound RTCP to
/// the track only when an interceptor marks it); everything else ends here as usual.
#[derive(Default)]
struct KeyframeTap {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<_> = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                })
                .cloned()
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.into(),
        rtcp_feedback: vec![],
    }
}

/// One browser's WebRTC connection with its video track.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    packetizer: Packetizer,
}

impl Peer {
    /// Answer the browser's offer. Returns the peer, its events, and the answer (with our
    /// candidates in it: no trickle).
    pub async fn answer(
        settings: &RtcSettings,
        offer: RTCSessionDescription,
    ) -> Result<
        (
            Peer,
            mpsc::UnboundedReceiver<PeerEvent>,
            RTCSessionDescription,
        ),
        RtcError,
    > {
        if !offer.sdp.contains("H264/90000") {
            return Err(RtcError::NoH264);
        }
        let mut me = MediaEngine::default();
        me.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: h264_codec(),
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )
        .map_err(w)?;
        me.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_CCM.into(),
                parameter: "fir".into(),
            },
            RtpCodecKind::Video,
        );
        let reg = configure_nack(Registry::new(), &mut me);
        let reg = configure_rtcp_reports(reg).with(Slot::from(14_000), KeyframeTap::default());
        let (ufrag, pwd) = ice_credentials().map_err(w)?;
        let se = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_ice_credentials(ufrag.clone(), pwd)
            .build();
        let (tx, rx) = mpsc::unbounded_channel();
        let gathered = Arc::new(tokio::sync::Notify::new());
        let handler = Arc::new(Handler {
            events: tx.clone(),
            gathered: gathered.clone(),
        });
        let tokio = webrtc::runtime::default_runtime()
            .ok_or_else(|| RtcError::Webrtc("no async runtime".into()))?;
        let runtime = Arc::new(MuxRuntime::new(tokio, settings.mux.clone(), ufrag));
        // The connection binds a socket of its own on this address; the mux replaces it.
        let addr = SocketAddr::new(settings.addr().ip(), 0);
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_interceptor_registry(reg)
            .with_setting_engine(se)
            .with_handler(handler)
            .with_runtime(runtime.clone())
            .with_udp_addrs(vec![addr])
            .with_data_channel_send_buffer_limit(64 * 1024)
            .build()
            .await
            .map_err(w)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        match Self::negotiate(&pc, offer, &gathered, tx).await {
            Ok((track, ssrc, pt, mut answer)) => {
                answer.sdp = runtime.advertise(&answer.sdp);
                Ok((
                    Peer {
                        pc,
                        track,
                        packetizer: Packetizer::new(ssrc, pt),
                    },
                    rx,
                    answer,
                ))
            }
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    async fn negotiate(
        pc: &Arc<dyn PeerConnection>,
        offer: RTCSessionDescription,
        gathered: &tokio::sync::Notify,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<(Arc<TrackLocalStaticRTP>, u32, u8, RTCSessionDescription), RtcError> {
        let ssrc = random_u32();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "tsuitate".into(),
            "screen".into(),
            "screen".into(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: h264_codec(),
                ..Default::default()
            }],
        )));
        let sender = pc
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(w)?;
        pc.set_remote_description(offer).await.map_err(w)?;
        let answer = pc.create_answer(None).await.map_err(w)?;
        pc.set_local_description(answer).await.map_err(w)?;
        let _ = tokio::time::timeout(GATHER_WAIT, gathered.notified()).await;
        let answer = pc
            .local_description()
            .await
            .ok_or_else(|| RtcError::Webrtc("no local description".into()))?;
        if !answer.sdp.contains("H264/90000") {
            return Err(RtcError::NoH264);
        }
        let params = sender.get_parameters().await.map_err(w)?;
        let pt = params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264))
            .map(|c| c.payload_type)
            .ok_or(RtcError::NoH264)?;
        // PLI/FIR: the track's event stream (ends when the connection closes).
        let feedback = track.clone();
        tokio::spawn(async move {
            while let Some(ev) = feedback.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(_) = ev {
                    if events.send(PeerEvent::KeyframeRequest).is_err() {
                        break;
                    }
                }
            }
        });
        Ok((track, ssrc, pt, answer))
    }

    /// Send one access unit, stamped with its capture time (µs, gateway clock).
    pub async fn send_frame(
        &mut self,
        capture_us: u64,
        access_unit: &Bytes,
    ) -> Result<(), RtcError> {
        for p in self.packetizer.packetize(capture_us, access_unit)? {
            self.track.write_rtp(p).await.map_err(w)?;
        }
        Ok(())
    }

    /// Close the connection (stops its driver task and ends every event stream).
    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// RTP timestamp for a capture time: the 90 kHz clock of the gateway's UNIX time, modulo 2³².
/// The page recovers the capture time from it (docs/viewer.md, latency).
pub fn rtp_timestamp(capture_us: u64) -> u32 {
    // Truncation to 32 bits is the RTP timestamp's own wrap-around.
    (u128::from(capture_us) * 9 / 100) as u32
}

/// Access units → RTP packets (one marker per access unit, SPS/PPS as STAP-A).
pub struct Packetizer {
    payloader: rtc::rtp::codec::h264::H264Payloader,
    ssrc: u32,
    pt: u8,
    seq: u16,
}

impl Packetizer {
    /// A packetizer for one stream.
    pub fn new(ssrc: u32, pt: u8) -> Packetizer {
        Packetizer {
            payloader: Default::default(),
            ssrc,
            pt,
            seq: random_u32() as u16,
        }
    }

    /// The packets of one access unit.
    pub fn packetize(
        &mut self,
        capture_us: u64,
        access_unit: &Bytes,
    ) -> Result<Vec<rtc::rtp::Packet>, RtcError> {
        let chunks = self
            .payloader
            .payload(RTP_PAYLOAD, access_unit)
            .map_err(w)?;
        let n = chunks.len();
        let timestamp = rtp_timestamp(capture_us);
        Ok(chunks
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                self.seq = self.seq.wrapping_add(1);
                rtc::rtp::Packet {
                    header: rtc::rtp::Header {
                        version: 2,
                        marker: i + 1 == n,
                        payload_type: self.pt,
                        sequence_number: self.seq,
                        timestamp,
                        ssrc: self.ssrc,
                        ..Default::default()
                    },
                    payload,
                }
            })
            .collect())
    }
}

/// A random u32 from the OS (SSRCs and sequence starts are not secrets, but must not repeat).
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_timestamps_follow_capture_time() {
        assert_eq!(rtp_timestamp(0), 0);
        assert_eq!(rtp_timestamp(1_000_000), 90_000);
        // 2^32 ticks at 90 kHz wrap after about 13.25 h.
        let wrap_us = (1u64 << 32) * 100 / 9;
        assert!(rtp_timestamp(wrap_us + 1_000_000) < 100_000);
    }

    #[test]
    fn one_access_unit_one_marker_and_parameter_sets_first() {
        let mut p = Packetizer::new(7, 102);
        // SPS, PPS, then an IDR slice larger than one packet.
        let mut au = vec![0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0xaa];
        au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        au.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        au.extend(std::iter::repeat_n(0x11, 3000));
        let pkts = p.packetize(1_000_000, &Bytes::from(au)).unwrap();
        assert!(pkts.len() >= 4, "{} packets", pkts.len());
        // STAP-A (type 24) carrying SPS+PPS comes first.
        assert_eq!(pkts[0].payload[0] & 0x1f, 24);
        assert!(pkts.iter().all(|k| k.header.timestamp == 90_000));
        assert!(pkts
            .iter()
            .all(|k| k.header.payload_type == 102 && k.header.ssrc == 7));
        let markers: Vec<bool> = pkts.iter().map(|k| k.header.marker).collect();
        assert_eq!(markers.iter().filter(|m| **m).count(), 1);
        assert!(markers[markers.len() - 1]);
        for pair in pkts.windows(2) {
            assert_eq!(
                pair[1].header.sequence_number,
                pair[0].header.sequence_number.wrapping_add(1)
            );
        }
    }
}
