//! The viewer writer task: drains a viewer's bounded queue onto its stream. Frames are written
//! as two shared `Bytes` chunks (header, access unit), never copied per viewer.

use quinn::SendStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tsuitate_protocol::{GatewayToViewer, Message};

use crate::state::ToViewer;

/// Spawn the writer; it ends after `Bye`, when the queue closes, or on a write error.
pub(crate) fn spawn_writer(
    mut send: SendStream,
    mut rx: mpsc::Receiver<ToViewer>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            let result = match item {
                ToViewer::Msg(m) => send.write_all(&m.to_bytes()).await,
                ToViewer::Video(f) => {
                    let mut chunks = [f.head, f.data];
                    send.write_all_chunks(&mut chunks).await
                }
                ToViewer::Bye(reason) => {
                    let _ = send
                        .write_all(&GatewayToViewer::Bye { reason }.to_bytes())
                        .await;
                    break;
                }
            };
            if result.is_err() {
                return;
            }
        }
        let _ = send.finish();
        let _ = send.stopped().await;
    })
}
