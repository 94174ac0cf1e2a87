//! A plain UDP socket for quinn: no ECN, no packet info, no segmentation offload. The fallback
//! for a platform that refuses the socket options quinn's own socket requires — Wine 8 does not
//! implement `IP_RECVECN` (nor `IPV6_V6ONLY` on IPv4 sockets), which quinn-udp 0.5 requires on
//! Windows, so the Windows viewer could not start under Wine (`OS Error 10045`). QUIC works
//! without them: ECN only informs congestion control, and one datagram per system call only
//! costs CPU at rates far above a viewer's.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::ReadBuf;

/// A tokio UDP socket that quinn can use.
#[derive(Debug)]
pub struct PlainUdp(tokio::net::UdpSocket);

impl PlainUdp {
    /// Bind `addr` (call inside the tokio runtime).
    pub fn bind(addr: SocketAddr) -> io::Result<Arc<PlainUdp>> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        Ok(Arc::new(PlainUdp(tokio::net::UdpSocket::from_std(socket)?)))
    }
}

/// Wakes quinn when the socket can send again.
struct Writable(Arc<PlainUdp>);

impl fmt::Debug for Writable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Writable")
    }
}

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        self.0 .0.poll_send_ready(cx)
    }
}

impl AsyncUdpSocket for PlainUdp {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable(self))
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // quinn sends one datagram at a time here (max_transmit_segments is 1); split anyway.
        let size = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        for datagram in transmit.contents.chunks(size) {
            self.0.try_send_to(datagram, transmit.destination)?;
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut read = ReadBuf::new(buf);
        match self.0.poll_recv_from(cx, &mut read) {
            Poll::Ready(Ok(addr)) => {
                let len = read.filled().len();
                *m = RecvMeta {
                    addr,
                    len,
                    stride: len,
                    ecn: None,
                    dst_ip: None,
                };
                Poll::Ready(Ok(1))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A client endpoint on a [`PlainUdp`] socket bound to `bind`, with `config` as its default.
pub fn plain_client_endpoint(
    bind: SocketAddr,
    config: quinn::ClientConfig,
) -> io::Result<quinn::Endpoint> {
    let mut ep = quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        None,
        PlainUdp::bind(bind)?,
        Arc::new(quinn::TokioRuntime),
    )?;
    ep.set_default_client_config(config);
    Ok(ep)
}
