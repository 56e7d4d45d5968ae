//! The TOML cluster config: the DESIGN §6 example, defaults, every error
//! kind, and the round trip through `to_toml_string`.

use std::path::{Path, PathBuf};

use kv_router::{
    AckMode, ClusterConfig, ClusterMap, ConfigError, NodeConfig, PlacementOverride,
    ReplicationConfig, SecurityConfig, StorageConfig, SyncMode,
};

const DESIGN_EXAMPLE: &str = include_str!("fixtures/design.toml");

/// Three nodes on distinct ports.
const NODES: &str = r#"
[[nodes]]
id = 0
addr = "127.0.0.1:7000"
[[nodes]]
id = 1
addr = "127.0.0.1:7001"
[[nodes]]
id = 2
addr = "127.0.0.1:7002"
"#;

/// A config of 4 partitions, RF 2, `extra` (tables or keys) and [`NODES`].
fn with(extra: &str) -> String {
    format!("partitions = 4\nreplication_factor = 2\n{extra}\n{NODES}")
}

fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
    ClusterConfig::from_toml_str(text)
}

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("expected an error, got {c:?}\nfrom:\n{text}"),
        Err(e) => e,
    }
}

/// The message of a `Toml` error (panics on any other kind).
fn toml_message(text: &str) -> String {
    match err(text) {
        ConfigError::Toml { message } => message,
        other => panic!("expected ConfigError::Toml, got {other:?}"),
    }
}

fn bad_size(storage: &str) -> ConfigError {
    err(&with(&format!("[storage]\n{storage}")))
}

// ---- the DESIGN example and defaults ------------------------------------

#[test]
fn design_example_parses() {
    let c = parse(DESIGN_EXAMPLE).unwrap();
    assert_eq!(c.partitions, 4);
    assert_eq!(c.replication_factor, 2);
    assert_eq!(c.storage, StorageConfig::default());
    assert_eq!(c.nodes.len(), 3);
    assert_eq!(
        c.nodes[0],
        NodeConfig {
            id: 0,
            addr: "127.0.0.1:7000".into(),
            data_dir: Some(PathBuf::from("data/node_0")),
            resp_addr: None,
        }
    );
    assert_eq!(
        c.placement,
        [PlacementOverride {
            partition: 3,
            replicas: vec![0, 2]
        }]
    );
}

#[test]
fn design_fragment_alone_names_the_missing_nodes() {
    // The §6 block as printed has one node but asks for two replicas.
    let fragment = DESIGN_EXAMPLE.split("# Added").next().unwrap();
    assert_eq!(
        err(fragment),
        ConfigError::ReplicationFactorTooHigh { rf: 2, nodes: 1 }
    );
}

#[test]
fn placement_override_is_honoured() {
    let map = ClusterMap::new(&parse(DESIGN_EXAMPLE).unwrap()).unwrap();
    assert_eq!(map.replicas(3), Some(&[0, 2][..]));
    // The formula still places the other partitions.
    assert_eq!(map.replicas(0), Some(&[0, 1][..]));
    assert_eq!(map.replicas(1), Some(&[1, 2][..]));
    assert_eq!(map.replicas(2), Some(&[2, 0][..]));
    let held = |n| {
        map.partitions_of(n)
            .into_iter()
            .map(|(p, _)| p)
            .collect::<Vec<_>>()
    };
    assert_eq!(held(0), [0, 2, 3]);
    assert_eq!(held(1), [0, 1]);
    assert_eq!(held(2), [1, 2, 3]);
}

#[test]
fn storage_table_is_optional_and_partial() {
    let c = parse(&with("")).unwrap();
    assert_eq!(c.storage, StorageConfig::default());
    assert!(c.placement.is_empty());
    assert_eq!(c.nodes[1].data_dir, None);

    let c = parse(&with("[storage]\nsync = \"always\"")).unwrap();
    assert_eq!(c.storage.sync, SyncMode::Always);
    assert_eq!(c.storage.sync_interval_ms, 1000);
}

#[test]
fn storage_defaults_match_design() {
    let s = StorageConfig::default();
    assert_eq!(s.sync, SyncMode::Interval);
    assert_eq!(s.sync_interval_ms, 1000);
    assert_eq!(s.hot_capacity_bytes, 67_108_864);
    assert_eq!(s.segment_bytes, 67_108_864);
}

#[test]
fn sizes_accept_units() {
    let cases: &[(&str, u64)] = &[
        ("67108864", 64 << 20),
        ("\"64MiB\"", 64 << 20),
        ("\"64 MiB\"", 64 << 20),
        ("\"512KiB\"", 512 << 10),
        ("\"1GiB\"", 1 << 30),
        ("\"1000000\"", 1_000_000),
        ("\"100MB\"", 100_000_000),
        ("\"4KiB\"", 4 << 10),
    ];
    for (text, bytes) in cases {
        let storage = format!("[storage]\nhot_capacity_bytes = {text}\nsegment_bytes = {text}");
        let c = parse(&with(&storage)).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c.storage.hot_capacity_bytes, *bytes, "{text}");
        assert_eq!(c.storage.segment_bytes, *bytes, "{text}");
    }
    let c = parse(&with("[storage]\nhot_capacity_bytes = \"8TiB\"")).unwrap();
    assert_eq!(c.storage.hot_capacity_bytes, 8 << 40);
}

#[test]
fn sync_modes_parse_in_lower_case() {
    for (text, mode) in [
        ("always", SyncMode::Always),
        ("interval", SyncMode::Interval),
        ("never", SyncMode::Never),
    ] {
        let c = parse(&with(&format!("[storage]\nsync = \"{text}\""))).unwrap();
        assert_eq!(c.storage.sync, mode);
        assert_eq!(mode.as_str(), text);
    }
}

#[test]
fn ephemeral_ports_may_repeat() {
    let c = ClusterConfig::default_topology();
    assert!(c.nodes.iter().all(|n| n.addr == "127.0.0.1:0"));
    c.validate().unwrap();
}

#[test]
fn node_ids_need_not_be_contiguous_or_sorted() {
    let text = r#"
        partitions = 3
        replication_factor = 2
        [[nodes]]
        id = 40
        addr = "h:4"
        [[nodes]]
        id = 7
        addr = "h:1"
        [[nodes]]
        id = 12
        addr = "[::1]:2"
    "#;
    let map = ClusterMap::new(&parse(text).unwrap()).unwrap();
    let ids: Vec<u32> = map.nodes().iter().map(|n| n.id).collect();
    assert_eq!(ids, [7, 12, 40]);
    assert_eq!(map.replicas(0), Some(&[7, 12][..]));
    assert_eq!(map.replicas(1), Some(&[12, 40][..]));
    assert_eq!(map.replicas(2), Some(&[40, 7][..]));
}

// ---- one test per error kind ---------------------------------------------

#[test]
fn toml_syntax_error_has_a_position() {
    let message = toml_message("partitions = 4\nreplication_factor = = 2\n");
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn unknown_keys_are_named() {
    let cases = [
        (with("partitons = 4"), "partitons"),
        (with("[storage]\nsegment_size = 1"), "segment_size"),
        (
            with("[[placement]]\npartition = 0\nreplicas = [0, 1]\nleader = 0"),
            "leader",
        ),
        (format!("{}\nport = 1", with("")), "port"),
        (with("[network]\nbind = \"x\""), "network"),
    ];
    for (text, key) in cases {
        let message = toml_message(&text);
        assert!(
            message.contains(&format!("unknown field `{key}`")),
            "{key}: {message}"
        );
    }
}

#[test]
fn missing_and_mistyped_keys_are_toml_errors() {
    assert!(toml_message(&format!("replication_factor = 2\n{NODES}")).contains("partitions"));
    assert!(
        toml_message("partitions = 1\nreplication_factor = 1\n[[nodes]]\nid = 0\n")
            .contains("addr")
    );
    assert!(toml_message(&with("[storage]\nsync = \"sometimes\"")).contains("sometimes"));
    assert!(toml_message(&with("[storage]\nsync = \"Always\"")).contains("Always"));
    toml_message(&format!("partitions = -4\nreplication_factor = 2\n{NODES}"));
    toml_message(&format!(
        "partitions = \"4\"\nreplication_factor = 2\n{NODES}"
    ));
    toml_message(&format!(
        "partitions = 4294967296\nreplication_factor = 2\n{NODES}"
    ));
    toml_message(&with("[storage]\nsync_interval_ms = -1"));
    assert!(toml_message(&with("[storage]\ncache_writes = \"no\"")).contains("no"));
}

#[test]
fn cache_writes_defaults_to_true_and_can_be_turned_off() {
    assert!(parse(&with("")).unwrap().storage.cache_writes);
    let off = parse(&with("[storage]\ncache_writes = false")).unwrap();
    assert!(!off.storage.cache_writes);
    assert!(off.to_toml_string().contains("cache_writes = false"));
}

#[test]
fn zero_partitions() {
    let text = format!("partitions = 0\nreplication_factor = 2\n{NODES}");
    assert_eq!(err(&text), ConfigError::ZeroPartitions);
}

#[test]
fn too_many_partitions() {
    let text = format!("partitions = 65537\nreplication_factor = 2\n{NODES}");
    assert_eq!(
        err(&text),
        ConfigError::TooManyPartitions {
            partitions: 65537,
            max: 65536
        }
    );
    let ok = format!("partitions = 65536\nreplication_factor = 2\n{NODES}");
    assert_eq!(parse(&ok).unwrap().partitions, 65536);
}

#[test]
fn zero_replication_factor() {
    let text = format!("partitions = 4\nreplication_factor = 0\n{NODES}");
    assert_eq!(err(&text), ConfigError::ZeroReplicationFactor);
}

#[test]
fn no_nodes() {
    assert_eq!(
        err("partitions = 4\nreplication_factor = 1\n"),
        ConfigError::NoNodes
    );
    assert_eq!(
        err("partitions = 4\nreplication_factor = 1\nnodes = []\n"),
        ConfigError::NoNodes
    );
}

#[test]
fn duplicate_node_id() {
    let text = with("[[nodes]]\nid = 1\naddr = \"127.0.0.1:7009\"");
    let e = err(&text);
    assert_eq!(e, ConfigError::DuplicateNodeId(1));
    assert!(e.to_string().contains("node id 1"), "{e}");
}

#[test]
fn duplicate_addr() {
    let text = with("[[nodes]]\nid = 9\naddr = \"127.0.0.1:7001\"");
    let e = err(&text);
    assert_eq!(
        e,
        ConfigError::DuplicateAddr {
            addr: "127.0.0.1:7001".into(),
            first: 1,
            second: 9
        }
    );
    assert!(e.to_string().contains("nodes 1 and 9"), "{e}");
    // Same host (any case) and port number is the same address.
    let text = with("[[nodes]]\nid = 9\naddr = \"127.0.0.1:07001\"");
    assert!(matches!(
        err(&text),
        ConfigError::DuplicateAddr {
            first: 1,
            second: 9,
            ..
        }
    ));
}

#[test]
fn bad_addr() {
    for addr in [
        "127.0.0.1",
        "127.0.0.1:70000",
        ":7000",
        "::1:7000",
        "host:port",
        "h :1",
    ] {
        let text = with(&format!("[[nodes]]\nid = 9\naddr = \"{addr}\""));
        let e = err(&text);
        assert!(
            matches!(&e, ConfigError::BadAddr { node: 9, addr: a, .. } if a == addr),
            "{addr}: {e:?}"
        );
        assert!(e.to_string().starts_with("node 9: address"), "{e}");
    }
}

#[test]
fn empty_data_dir() {
    let text = with("[[nodes]]\nid = 9\naddr = \"h:1\"\ndata_dir = \"\"");
    assert_eq!(err(&text), ConfigError::EmptyDataDir { node: 9 });
}

#[test]
fn replication_factor_above_node_count() {
    let text = format!("partitions = 4\nreplication_factor = 4\n{NODES}");
    let e = err(&text);
    assert_eq!(e, ConfigError::ReplicationFactorTooHigh { rf: 4, nodes: 3 });
    assert!(e.to_string().contains("replication_factor = 4"), "{e}");
}

#[test]
fn bad_sizes() {
    let cases: &[(&str, &str, &str)] = &[
        ("segment_bytes = 0", "segment_bytes", "0"),
        ("hot_capacity_bytes = 0", "hot_capacity_bytes", "0"),
        (
            "hot_capacity_bytes = \"0MiB\"",
            "hot_capacity_bytes",
            "\"0MiB\"",
        ),
        ("hot_capacity_bytes = -1", "hot_capacity_bytes", "-1"),
        (
            "hot_capacity_bytes = \"-64MiB\"",
            "hot_capacity_bytes",
            "\"-64MiB\"",
        ),
        (
            "hot_capacity_bytes = \"64 parsecs\"",
            "hot_capacity_bytes",
            "\"64 parsecs\"",
        ),
        (
            "hot_capacity_bytes = \"1.5GiB\"",
            "hot_capacity_bytes",
            "\"1.5GiB\"",
        ),
        ("hot_capacity_bytes = 1.5", "hot_capacity_bytes", "1.5"),
        ("hot_capacity_bytes = true", "hot_capacity_bytes", "true"),
        (
            "hot_capacity_bytes = \"99999999999TiB\"",
            "hot_capacity_bytes",
            "\"99999999999TiB\"",
        ),
        ("segment_bytes = 4095", "segment_bytes", "4095"),
        ("segment_bytes = \"2KiB\"", "segment_bytes", "\"2KiB\""),
        ("segment_bytes = \"2GiB\"", "segment_bytes", "\"2GiB\""),
        ("segment_bytes = 4294967297", "segment_bytes", "4294967297"),
    ];
    for (storage, field, value) in cases {
        let e = bad_size(storage);
        assert!(
            matches!(&e, ConfigError::BadSize { field: f, value: v, .. } if f == field && v == value),
            "{storage}: {e:?}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("storage.{field} = {value}: ")),
            "{e}"
        );
    }
}

#[test]
fn zero_sync_interval() {
    let e = bad_size("sync_interval_ms = 0");
    assert_eq!(e, ConfigError::ZeroSyncInterval);
    assert_eq!(
        bad_size("sync = \"interval\"\nsync_interval_ms = 0"),
        ConfigError::ZeroSyncInterval
    );
    // Without interval syncing the period is unused, so 0 is fine.
    parse(&with("[storage]\nsync = \"never\"\nsync_interval_ms = 0")).unwrap();
}

#[test]
fn unknown_node_in_set_addr() {
    let mut map = ClusterMap::new(&ClusterConfig::default_topology()).unwrap();
    assert_eq!(
        map.set_addr(5, "127.0.0.1:1".into()),
        Err(ConfigError::UnknownNode { node: 5 })
    );
}

#[test]
fn placement_errors() {
    let cases: &[(&str, u32, &str)] = &[
        ("partition = 4\nreplicas = [0, 1]", 4, "out of range"),
        (
            "partition = 1\nreplicas = [0]",
            1,
            "lists 1 replica(s) but replication_factor is 2",
        ),
        (
            "partition = 1\nreplicas = [0, 1, 2]",
            1,
            "lists 3 replica(s)",
        ),
        ("partition = 1\nreplicas = []", 1, "lists 0 replica(s)"),
        (
            "partition = 2\nreplicas = [0, 7]",
            2,
            "replica node 7 is not in [[nodes]]",
        ),
        (
            "partition = 0\nreplicas = [1, 1]",
            0,
            "node 1 is listed twice",
        ),
    ];
    for (body, partition, reason) in cases {
        let e = err(&with(&format!("[[placement]]\n{body}")));
        assert!(
            matches!(&e, ConfigError::Placement { partition: p, reason: r } if p == partition && r.contains(reason)),
            "{body}: {e:?}"
        );
        assert!(
            e.to_string().contains(&format!("partition {partition}")),
            "{e}"
        );
    }
    let twice = "[[placement]]\npartition = 1\nreplicas = [0, 2]\n\
                 [[placement]]\npartition = 1\nreplicas = [2, 0]";
    assert!(matches!(
        err(&with(twice)),
        ConfigError::Placement { partition: 1, reason } if reason.contains("more than one")
    ));
}

#[test]
fn programmatic_configs_are_validated_too() {
    let mut c = ClusterConfig::default_topology();
    c.storage.segment_bytes = 1;
    assert!(matches!(
        ClusterMap::new(&c),
        Err(ConfigError::BadSize {
            field: "segment_bytes",
            ..
        })
    ));
    let mut c = ClusterConfig::default_topology();
    c.nodes[2].id = 0;
    assert_eq!(c.validate(), Err(ConfigError::DuplicateNodeId(0)));
}

// ---- round trip ----------------------------------------------------------

fn round_trip(c: &ClusterConfig) {
    let text = c.to_toml_string();
    let back = ClusterConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, c, "\n{text}");
}

#[test]
fn to_toml_string_round_trips() {
    round_trip(&ClusterConfig::default_topology());
    round_trip(&parse(DESIGN_EXAMPLE).unwrap());
    let mut c = ClusterConfig::default_topology();
    c.storage = StorageConfig {
        sync: SyncMode::Never,
        sync_interval_ms: 0,
        hot_capacity_bytes: u64::MAX,
        segment_bytes: 4096,
        cache_writes: false,
    };
    c.nodes[1].addr = "[::1]:9000".into();
    c.nodes[2].data_dir = Some("dir with \"quotes\" \\ and\ttabs/ключ".into());
    round_trip(&c);
    c.security = SecurityConfig {
        secret_file: Some("secret/cluster.key".into()),
        client_password: Some("pa\"ss".into()),
    };
    round_trip(&c);
}

#[test]
fn security_table_parses_and_secret_file_is_relative_to_the_config() {
    let text = format!(
        "{DESIGN_EXAMPLE}\n[security]\nsecret_file = \"cluster.key\"\nclient_password = \"hunter2\"\n"
    );
    let mut c = parse(&text).unwrap();
    assert_eq!(
        c.security.secret_file.as_deref(),
        Some(Path::new("cluster.key"))
    );
    assert_eq!(c.security.client_password.as_deref(), Some("hunter2"));
    c.resolve_data_dirs(Path::new("/etc/kv"));
    assert_eq!(
        c.security.secret_file.as_deref(),
        Some(Path::new("/etc/kv/cluster.key"))
    );
    let unknown = parse(&format!("{DESIGN_EXAMPLE}\n[security]\nsecret = \"x\"\n"));
    assert!(unknown.is_err());
    assert_eq!(
        parse(DESIGN_EXAMPLE).unwrap().security,
        SecurityConfig::default()
    );
}

#[test]
fn to_toml_string_layout() {
    let text = parse(DESIGN_EXAMPLE).unwrap().to_toml_string();
    let expected = r#"partitions = 4
replication_factor = 2

[storage]
sync = "interval"
sync_interval_ms = 1000
hot_capacity_bytes = 67108864
segment_bytes = 67108864
cache_writes = true

[[nodes]]
id = 0
addr = "127.0.0.1:7000"
data_dir = "data/node_0"

[[nodes]]
id = 1
addr = "127.0.0.1:7001"
data_dir = "data/node_1"

[[nodes]]
id = 2
addr = "127.0.0.1:7002"
data_dir = "data/node_2"

[[placement]]
partition = 3
replicas = [0, 2]
"#;
    assert_eq!(text, expected);
}

// ---- RESP listener and security ------------------------------------------

const RESP_AND_SECURITY: &str = r#"
partitions = 4
replication_factor = 1

[[nodes]]
id = 0
addr = "127.0.0.1:7000"
resp_addr = "127.0.0.1:6379"

[[nodes]]
id = 1
addr = "127.0.0.1:7001"

[security]
client_password = "s3cret \"quoted\""
"#;

#[test]
fn resp_addr_and_client_password_parse_and_round_trip() {
    let c = parse(RESP_AND_SECURITY).unwrap();
    assert_eq!(c.nodes[0].resp_addr.as_deref(), Some("127.0.0.1:6379"));
    assert_eq!(c.nodes[1].resp_addr, None);
    assert_eq!(
        c.security.client_password.as_deref(),
        Some("s3cret \"quoted\"")
    );
    round_trip(&c);
    let text = c.to_toml_string();
    assert!(text.contains("resp_addr = \"127.0.0.1:6379\""), "{text}");
    assert!(text.contains("[security]"), "{text}");
}

#[test]
fn no_security_table_when_nothing_is_set() {
    let c = ClusterConfig::default_topology();
    assert_eq!(c.security.client_password, None);
    assert!(!c.to_toml_string().contains("[security]"));
}

#[test]
fn resp_addr_is_checked_like_addr() {
    let bad = RESP_AND_SECURITY.replace("127.0.0.1:6379", "no-port");
    assert!(matches!(
        parse(&bad),
        Err(ConfigError::BadAddr { node: 0, .. })
    ));
    let clash = RESP_AND_SECURITY.replace("127.0.0.1:6379", "127.0.0.1:7001");
    assert!(matches!(
        parse(&clash),
        Err(ConfigError::DuplicateAddr { .. })
    ));
}

#[test]
fn unknown_security_key_is_an_error() {
    let typo = RESP_AND_SECURITY.replace("client_password", "client_pasword");
    assert!(matches!(parse(&typo), Err(ConfigError::Toml { .. })));
}

#[test]
fn replication_table_defaults_when_absent() {
    let c = parse(&with("")).unwrap();
    assert_eq!(c.replication, ReplicationConfig::default());
    assert_eq!(c.replication.acks, AckMode::Leader);
    assert_eq!(c.replication.min_insync_replicas, 1);
    assert_eq!(c.replication.replica_lag_max_ms, 5000);
}

#[test]
fn replication_table_is_read_and_round_trips() {
    let text =
        with("[replication]\nacks = \"all\"\nmin_insync_replicas = 2\nreplica_lag_max_ms = 250");
    let c = parse(&text).unwrap();
    assert_eq!(
        c.replication,
        ReplicationConfig {
            acks: AckMode::All,
            min_insync_replicas: 2,
            replica_lag_max_ms: 250,
        }
    );
    assert_eq!(parse(&c.to_toml_string()).unwrap(), c);
}

#[test]
fn replication_table_errors() {
    let bad_mode = with("[replication]\nacks = \"quorum\"");
    assert!(matches!(err(&bad_mode), ConfigError::Toml { .. }));
    let typo = with("[replication]\nack = \"all\"");
    assert!(matches!(err(&typo), ConfigError::Toml { .. }));
    let too_many = with("[replication]\nmin_insync_replicas = 3");
    assert_eq!(
        err(&too_many),
        ConfigError::MinInsyncReplicas {
            min: 3,
            replication_factor: 2
        }
    );
    let zero_lag = with("[replication]\nreplica_lag_max_ms = 0");
    assert_eq!(err(&zero_lag), ConfigError::ZeroReplicaLagMax);
}
