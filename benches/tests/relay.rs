//! The relay harness works end to end: frames cross the real gateway and the bare forward,
//! byte-identical access units arrive, and nothing is dropped. (No timing is asserted.)

use std::time::Duration;

use tsuitate_agent::SyntheticContent;
use tsuitate_benches::content::{encode_case, Case};
use tsuitate_benches::relay::RelayEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_cross_gateway_and_forward() {
    let case = Case {
        width: 320,
        height: 240,
        content: SyntheticContent::Scroll,
    };
    let aus = match encode_case(case, 10) {
        Ok((aus, _)) => aus,
        Err(e) => panic!("encode: {e}"),
    };
    let start = RelayEnv::start(&aus, case.width, case.height);
    let mut env = match tokio::time::timeout(Duration::from_secs(60), start).await {
        Ok(Ok(env)) => env,
        Ok(Err(e)) => panic!("setup: {e}"),
        Err(_) => panic!("setup did not finish in 60 s"),
    };
    for _ in 0..5 {
        if let Err(e) = env.gateway.lockstep().await {
            panic!("gateway lockstep: {e}");
        }
        if let Err(e) = env.forward.lockstep().await {
            panic!("forward lockstep: {e}");
        }
    }
    for link in [&mut env.gateway, &mut env.forward] {
        match link.burst().await {
            Ok((_, bytes)) => assert!(bytes > 0),
            Err(e) => panic!("burst: {e}"),
        }
    }
    assert_eq!(env.gateway_drops(), 0);
    tokio::time::timeout(Duration::from_secs(30), env.stop())
        .await
        .unwrap_or_else(|_| panic!("stop did not finish"));
}
