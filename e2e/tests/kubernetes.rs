//! deploy/kubernetes checked against what it deploys: every file listed, every configuration
//! accepted by the binaries' own parsers, every container command accepted by the binary's
//! command line, the ports of the configurations, containers, Services and probes in step, and
//! the zone split in the network policies (nothing from the Internet-zone namespace reaches the
//! LGWAN side). The schemas themselves are checked by `kubernetes-validate` in scripts/test.sh.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// Every document of every resource file the kustomization lists.
fn documents() -> Vec<Value> {
    let kustomization: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir().join("kustomization.yaml")).unwrap())
            .unwrap();
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .map(|v| v.as_str().expect("file name").to_owned())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "the kustomization lists every manifest");
    let mut docs = Vec::new();
    for f in listed {
        let text = std::fs::read_to_string(dir().join(&f)).unwrap();
        for d in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(d).unwrap_or_else(|e| panic!("{f}: {e}"));
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    docs
}

fn kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The configuration text with its absolute paths moved under `root`, where every file it names
/// exists (empty) and every other path is a folder.
fn rooted(text: &str, root: &Path) -> String {
    let mut out = text.to_owned();
    for prefix in [
        "/etc/tsuitate/",
        "/var/lib/tsuitate-agent",
        "/var/lib/tsuitate/",
        "/var/log/tsuitate/",
    ] {
        out = out.replace(
            &format!("\"{prefix}"),
            &format!("\"{}{prefix}", root.display()),
        );
    }
    for line in out.lines() {
        let Some((_, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        if !v.starts_with(&root.display().to_string()) {
            continue;
        }
        let p = Path::new(v);
        if p.extension().is_some() {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        } else {
            std::fs::create_dir_all(p).unwrap();
        }
    }
    out
}

fn containers(w: &Value) -> Vec<&Value> {
    w["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .collect()
}

fn port_of(container: &Value, name: &str) -> i64 {
    container["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("container port {name}"))
}

fn listen_port(addr: &str) -> i64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn the_configurations_are_accepted_by_the_binaries_parsers() {
    let docs = documents();
    let root = tempfile::tempdir().unwrap();
    let data = |name: &str, key: &str| s(&kind(&docs, "ConfigMap", name)["data"][key]).to_owned();

    let gateway = data("tsuitate-gateway-config", "gateway.toml");
    let cfg = tsuitate_gateway::config::Config::parse(&gateway)
        .unwrap_or_else(|e| panic!("gateway.toml: {e}"));
    cfg.validate(false)
        .unwrap_or_else(|e| panic!("gateway.toml: {e}"));
    let g = &containers(kind(&docs, "StatefulSet", "tsuitate-gateway"))[0];
    assert_eq!(port_of(g, "agents") as u16, cfg.agent_listen.port());
    assert_eq!(port_of(g, "viewers") as u16, cfg.viewer_listen.port());
    assert_eq!(port_of(g, "admin") as u16, cfg.admin_listen.port());
    // Every instance keys session owners with the one Secret (never mounted on an agent).
    let owner = cfg
        .session
        .owner_key_file
        .clone()
        .expect("[session] owner_key_file is set");
    let mount = g["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| owner.starts_with(s(&m["mountPath"])))
        .unwrap_or_else(|| panic!("{} is on no volume", owner.display()));
    let pod = &kind(&docs, "StatefulSet", "tsuitate-gateway")["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .expect("the owner key's volume");
    assert_eq!(s(&volume["secret"]["secretName"]), "tsuitate-owner-key");
    let agent_pod = &kind(&docs, "StatefulSet", "tsuitate-agent")["spec"]["template"]["spec"];
    assert!(
        !serde_yaml::to_string(agent_pod)
            .unwrap()
            .contains("tsuitate-owner-key"),
        "agents never get the owner key"
    );
    let store = cfg
        .lockout
        .shared_store
        .clone()
        .expect("a shared lockout store");
    let store_svc = kind(&docs, "Service", "lockout-store");
    assert!(
        store.starts_with("lockout-store.tsuitate-boundary.svc"),
        "{store}"
    );
    assert_eq!(
        listen_port(&store),
        store_svc["spec"]["ports"][0]["port"].as_i64().unwrap()
    );

    // The agent's template, for pod tsuitate-agent-0 (chromium and Xvfb as installed here).
    let agent = rooted(
        &data("tsuitate-agent-config", "agent.toml").replace("@POD@", "tsuitate-agent-0"),
        root.path(),
    );
    let a = tsuitate_agent::config::AgentConfig::parse(&agent)
        .unwrap_or_else(|e| panic!("agent.toml: {e}"));
    assert_eq!(a.agent_id, "tsuitate-agent-0");
    let gw = a.gateways[0].addr.to_string();
    assert!(
        gw.starts_with("gateway-agents.tsuitate-boundary.svc"),
        "the agents reach every gateway through the headless Service: {gw}"
    );
    let headless = kind(&docs, "Service", "gateway-agents");
    assert_eq!(s(&headless["spec"]["clusterIP"]), "None");
    assert_eq!(
        listen_port(&gw),
        headless["spec"]["ports"][0]["port"].as_i64().unwrap()
    );

    let web_text = rooted(&data("tsuitate-web-config", "web.toml"), root.path());
    let web_path = root.path().join("web.toml");
    std::fs::write(&web_path, &web_text).unwrap();
    let w = tsuitate_web::config::WebConfig::load(&web_path)
        .unwrap_or_else(|e| panic!("web.toml: {e}"));
    let wc = &containers(kind(&docs, "Deployment", "tsuitate-web"))[0];
    assert_eq!(port_of(wc, "https") as u16, w.listen.port());
    assert_eq!(port_of(wc, "rtc") as u16, w.rtc_port);
    assert!(w
        .gateway
        .starts_with("gateway-viewers.tsuitate-boundary.svc"));
    let viewers = kind(&docs, "Service", "gateway-viewers");
    assert_eq!(
        listen_port(&w.gateway),
        viewers["spec"]["ports"][0]["port"].as_i64().unwrap()
    );
    // In the LGWAN-facing node's network: the address it listens on is the one browsers are
    // told for WebRTC.
    let pod = &kind(&docs, "Deployment", "tsuitate-web")["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(w.listen.ip(), w.rtc_ip);
}

#[test]
fn every_command_is_accepted_by_its_binary_and_every_port_name_exists() {
    let docs = documents();
    let ours = ["tsuitate-gateway", "tsuitate-agent", "tsuitate-web"];
    let mut seen = BTreeSet::new();
    for w in docs
        .iter()
        .filter(|d| d["kind"] == "StatefulSet" || d["kind"] == "Deployment")
    {
        let pod = &w["spec"]["template"]["spec"];
        let all: Vec<&Value> = containers(w)
            .into_iter()
            .chain(pod["initContainers"].as_sequence().into_iter().flatten())
            .collect();
        let names: BTreeSet<&str> = containers(w)
            .iter()
            .flat_map(|c| c["ports"].as_sequence().into_iter().flatten())
            .map(|p| s(&p["name"]))
            .collect();
        for c in &all {
            let cmd: Vec<&str> = c["command"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            if let Some(bin) = cmd.first().filter(|b| ours.contains(b)) {
                // Every flag and the subcommand as the binary parses them (then --help).
                let out = Command::new(tsuitate_testkit::bin(bin))
                    .args(&cmd[1..])
                    .arg("--help")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{bin} refuses {cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                seen.insert(bin.to_string());
            }
            for probe in ["readinessProbe", "livenessProbe"] {
                let p = &c[probe];
                for port in [&p["httpGet"]["port"], &p["tcpSocket"]["port"]] {
                    if let Some(n) = port.as_str() {
                        assert!(names.contains(n), "{probe} port {n}");
                    }
                }
            }
        }
        // Every Service selecting these pods names ports they have.
        let app = s(&w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]);
        for svc in docs.iter().filter(|d| {
            d["kind"] == "Service"
                && s(&d["spec"]["selector"]["app.kubernetes.io/name"]) == app
                && d["metadata"]["namespace"] == w["metadata"]["namespace"]
        }) {
            for p in svc["spec"]["ports"].as_sequence().into_iter().flatten() {
                if let Some(n) = p["targetPort"].as_str() {
                    assert!(
                        names.contains(n),
                        "{}: targetPort {n}",
                        s(&svc["metadata"]["name"])
                    );
                }
            }
        }
    }
    assert_eq!(seen.len(), 3, "all three binaries are deployed: {seen:?}");
}

#[test]
fn the_network_policies_keep_the_internet_zone_away_from_the_lgwan_side() {
    let docs = documents();
    let policies: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "NetworkPolicy")
        .collect();
    let ns = |p: &Value| s(&p["metadata"]["namespace"]).to_owned();
    // Every namespace denies everything it does not list.
    let namespaces: BTreeSet<String> = docs
        .iter()
        .filter(|d| d["kind"] == "Namespace")
        .map(|d| s(&d["metadata"]["name"]).to_owned())
        .collect();
    for n in &namespaces {
        assert!(
            policies.iter().any(|p| ns(p) == *n
                && p["spec"]["podSelector"]
                    .as_mapping()
                    .is_some_and(|m| m.is_empty())
                && p["spec"]["ingress"].is_null()
                && p["spec"]["egress"].is_null()),
            "{n}: a default-deny policy"
        );
    }
    // A rule without peers allows everyone: it counts as the whole address space.
    let everyone: Value = serde_yaml::from_str("ipBlock: {cidr: 0.0.0.0/0}").unwrap();
    let peers = |p: &Value, dir: &str, side: &str| -> Vec<Value> {
        p["spec"][dir]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|r| {
                r[side]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_else(|| vec![everyone.clone()])
            })
            .collect()
    };
    // The LGWAN side takes traffic from the LGWAN network only.
    let mut lgwan_cidrs = BTreeMap::new();
    for p in policies.iter().filter(|p| ns(p) == "tsuitate-lgwan") {
        for peer in peers(p, "ingress", "from") {
            let cidr = s(&peer["ipBlock"]["cidr"]).to_owned();
            assert!(
                !cidr.is_empty() && peer.get("namespaceSelector").is_none(),
                "the web viewer takes traffic only from the LGWAN network: {peer:?}"
            );
            lgwan_cidrs.insert(cidr, ());
        }
    }
    assert!(!lgwan_cidrs.is_empty());
    // The Internet zone sends to the gateways' agent listener, DNS and the proxy: never to the
    // LGWAN namespace or network.
    for p in policies.iter().filter(|p| ns(p) == "tsuitate-internet") {
        assert!(
            peers(p, "ingress", "from").is_empty(),
            "nothing reaches the agents"
        );
        for peer in peers(p, "egress", "to") {
            let zone = s(&peer["namespaceSelector"]["matchLabels"]["tsuitate.lg.jp/zone"]);
            assert_ne!(zone, "lgwan", "{peer:?}");
            let cidr = s(&peer["ipBlock"]["cidr"]);
            if !cidr.is_empty() {
                assert!(
                    lgwan_cidrs.keys().all(|l| !overlap(l, cidr)),
                    "agents reach the LGWAN network: {peer:?}"
                );
            }
        }
    }
    // The gateway takes agents only on 4701 and viewers only on 4700.
    let gw = kind(&docs, "NetworkPolicy", "gateway");
    for rule in gw["spec"]["ingress"].as_sequence().unwrap() {
        let from_internet = rule["from"].as_sequence().unwrap().iter().any(|f| {
            s(&f["namespaceSelector"]["matchLabels"]["tsuitate.lg.jp/zone"]) == "internet"
        });
        if from_internet {
            let ports: Vec<i64> = rule["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_i64().unwrap())
                .collect();
            assert_eq!(
                ports,
                vec![4701],
                "the Internet zone reaches only the agent listener"
            );
        }
    }
}

/// Whether two IPv4 CIDR blocks share an address.
fn overlap(a: &str, b: &str) -> bool {
    let parse = |c: &str| -> (u32, u32) {
        let (ip, len) = c.split_once('/').expect("a CIDR block");
        (
            u32::from(ip.parse::<std::net::Ipv4Addr>().expect("IPv4")),
            len.parse().expect("prefix length"),
        )
    };
    let ((a, la), (b, lb)) = (parse(a), parse(b));
    let len = la.min(lb);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a & mask == b & mask
}

#[test]
fn cidr_overlap() {
    assert!(overlap("10.0.0.0/16", "10.0.0.0/8"));
    assert!(overlap("10.0.0.0/16", "0.0.0.0/0"));
    assert!(!overlap("10.0.0.0/16", "172.16.0.0/12"));
    assert!(!overlap("10.0.0.0/16", "10.1.0.0/16"));
}

#[test]
fn the_image_holds_the_binaries_and_the_browser_packages() {
    let file = std::fs::read_to_string(dir().join("../container/Containerfile")).unwrap();
    for bin in ["tsuitate-gateway", "tsuitate-agent", "tsuitate-web"] {
        assert!(file.contains(&format!("target/release/{bin}")), "{bin}");
    }
    for pkg in [
        "xvfb",
        "chromium",
        "chromium-l10n",
        "fonts-noto-cjk",
        "libnss3-tools",
        "xauth",
    ] {
        assert!(file.contains(&format!(" {pkg}")), "{pkg}");
    }
    assert!(file.contains("setup-browser-user.sh"));
}

#[test]
fn the_autoscalers_scale_our_statefulsets_on_a_metric_the_gateway_exports() {
    let docs = documents();
    let exported = tsuitate_gateway::metrics::Metrics::default()
        .render(tsuitate_gateway::metrics::Gauges::default());
    let hpas: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "HorizontalPodAutoscaler")
        .collect();
    let targets: BTreeSet<&str> = hpas
        .iter()
        .map(|h| s(&h["spec"]["scaleTargetRef"]["name"]))
        .collect();
    assert_eq!(
        targets,
        BTreeSet::from(["tsuitate-agent", "tsuitate-gateway"]),
        "gateways and agents scale"
    );
    for h in hpas {
        let target = &h["spec"]["scaleTargetRef"];
        assert_eq!(target["kind"], "StatefulSet");
        let set = kind(&docs, "StatefulSet", s(&target["name"]));
        assert_eq!(
            set["metadata"]["namespace"], h["metadata"]["namespace"],
            "an autoscaler scales in its own namespace"
        );
        let replicas = set["spec"]["replicas"].as_i64().unwrap_or(1);
        let (min, max) = (
            h["spec"]["minReplicas"].as_i64().unwrap_or(1),
            h["spec"]["maxReplicas"].as_i64().unwrap_or(0),
        );
        assert!(min <= replicas && replicas <= max, "{}", s(&target["name"]));
        for m in h["spec"]["metrics"].as_sequence().expect("metrics") {
            let name = [
                &m["pods"]["metric"]["name"],
                &m["external"]["metric"]["name"],
            ]
            .into_iter()
            .find_map(|v| v.as_str())
            .expect("a pods or external metric");
            assert!(
                exported
                    .lines()
                    .any(|l| l.starts_with(&format!("# TYPE {name} "))),
                "{name} is a metric the gateway exports"
            );
        }
    }
    // Removing an agent pod ends the browsers on it: never automatically.
    let agents = kind(&docs, "HorizontalPodAutoscaler", "tsuitate-agent");
    assert_eq!(
        agents["spec"]["behavior"]["scaleDown"]["selectPolicy"],
        "Disabled"
    );
}
