//! `kv node --resp`: a node process serving RESP2, its password from the
//! config's `[security]` table overridden by `KV_PASSWORD`, and the shell
//! printing a binary value written over RESP in redis-cli's escaped form.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use common::{Running, free_ports, kv, poll, run};

const WAIT: Duration = Duration::from_secs(30);

fn ask(s: &mut TcpStream, request: &[u8]) -> String {
    s.write_all(request).unwrap();
    let mut buf = vec![0; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn node_serves_resp_with_the_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let (node_port, resp_port, config_resp_port) = (ports[0], ports[1], ports[2]);
    let config = format!(
        "partitions = 4\nreplication_factor = 1\n\n[[nodes]]\nid = 0\naddr = \"127.0.0.1:{node_port}\"\nresp_addr = \"127.0.0.1:{config_resp_port}\"\n\n[security]\nclient_password = \"from-config\"\n"
    );
    std::fs::write(dir.path().join("cluster.toml"), config).unwrap();
    let mut cmd = kv(dir.path());
    cmd.args(["node", "--config", "cluster.toml", "--id", "0"])
        .args(["--resp", &format!("127.0.0.1:{resp_port}")])
        .env("KV_PASSWORD", "from-env")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut node = Running::spawn(cmd);
    let mut s = poll("the RESP listener", WAIT, || {
        TcpStream::connect(("127.0.0.1", resp_port)).map_err(|e| e.to_string())
    });
    s.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(
        ask(&mut s, b"GET k\r\n"),
        "-NOAUTH Authentication required.\r\n"
    );
    assert!(ask(&mut s, b"AUTH from-config\r\n").starts_with("-WRONGPASS"));
    assert_eq!(ask(&mut s, b"AUTH from-env\r\n"), "+OK\r\n");
    let set = b"*3\r\n$3\r\nSET\r\n$3\r\nbin\r\n$3\r\n\xff\x00A\r\n";
    assert_eq!(ask(&mut s, set), "+OK\r\n");
    // --resp overrides the config's resp_addr: nothing listens there.
    assert!(TcpStream::connect(("127.0.0.1", config_resp_port)).is_err());

    // The framed protocol asks clients for the same password.
    let out = run(dir.path(), &["--cluster", "cluster.toml", "get", "bin"], "");
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("password"), "{out:?}");
    let out = kv(dir.path())
        .args(["--cluster", "cluster.toml", "get", "bin"])
        .env("KV_PASSWORD", "from-env")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"\"\\xff\\x00A\"\n");
    node.kill();
}
