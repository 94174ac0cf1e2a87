//! The plain UDP socket quinn falls back to (where a platform refuses quinn's socket options, as
//! Wine does): a real QUIC + TLS 1.3 handshake and a stream exchange through it.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use tsuitate_transport::config::{client_config, server_config, ServerAuth, Tuning};
use tsuitate_transport::plain_udp::plain_client_endpoint;

#[tokio::test]
async fn a_plain_udp_client_endpoint_speaks_quic_with_a_real_server() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let tuning = Tuning::default();
    let server_cfg =
        server_config(vec![der.clone()], key, ServerAuth::Anyone, &tuning, 16).unwrap();
    let server = quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let server_addr = server.local_addr().unwrap();
    let echo = tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let got = recv.read_to_end(1024).await.unwrap();
        send.write_all(&[b"echo: ".as_slice(), &got].concat())
            .await
            .unwrap();
        send.finish().unwrap();
        conn.closed().await;
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = plain_client_endpoint(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        client_config(roots, None, &tuning).unwrap(),
    )
    .unwrap();
    let conn = client
        .connect(server_addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(b"hello").await.unwrap();
    send.finish().unwrap();
    let answer = recv.read_to_end(1024).await.unwrap();
    assert_eq!(answer, b"echo: hello");
    conn.close(0u32.into(), b"done");
    echo.await.unwrap();
}
