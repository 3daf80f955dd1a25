//! Cheap health checks over a plain `TcpStream` on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_millis(1500);

fn connect(port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub(super) fn port_open(port: u16) -> bool {
    connect(port, Duration::from_millis(300)).is_ok()
}

/// Sends `request` and reads the reply until `done(reply so far)`, EOF or `limit` bytes.
fn exchange(
    port: u16,
    request: &[u8],
    limit: usize,
    done: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, String> {
    let mut stream = connect(port, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&reply) && reply.len() < limit {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(reply)
}

/// Redis: `PING` must answer `+PONG`.
pub(super) fn redis(port: u16) -> Result<(), String> {
    let reply = exchange(port, b"PING\r\n", 512, |r| r.contains(&b'\n'))?;
    if reply.starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(format!(
            "PING answered {:?}",
            String::from_utf8_lossy(&reply).trim_end()
        ))
    }
}

/// A Redis Cluster: each of its three masters on `first`..`first + 2` must report
/// `cluster_state:ok` in `CLUSTER INFO`.
pub(super) fn redis_cluster(first: u16) -> Result<(), String> {
    for port in first..first + 3 {
        let reply = exchange(port, b"CLUSTER INFO\r\n", 1 << 16, |r| {
            r.starts_with(b"-")
                || r.windows(14)
                    .position(|w| w == b"cluster_state:")
                    .is_some_and(|i| r[i..].windows(2).any(|w| w == b"\r\n"))
        })?;
        let text = String::from_utf8_lossy(&reply);
        if !text.contains("cluster_state:ok") {
            let state = text
                .lines()
                .find(|l| l.starts_with("cluster_state:") || l.starts_with('-'))
                .unwrap_or("no cluster_state")
                .to_owned();
            return Err(format!("127.0.0.1:{port}: {state}"));
        }
    }
    Ok(())
}

/// MongoDB wire protocol: an `OP_MSG` `{hello: 1, $db: "admin"}` must get an `OP_MSG`
/// reply to our request id whose document has `ok: 1`.
pub(super) fn mongodb(port: u16) -> Result<(), String> {
    const OP_MSG: i32 = 2013;
    const REQUEST_ID: i32 = 0x7874_6b31;
    let request = mongodb_hello(REQUEST_ID);
    let reply = exchange(port, &request, 1 << 20, |r| {
        r.len() >= 4 && r.len() >= le_i32(r, 0).unwrap_or(0).max(16) as usize
    })?;
    let (Some(len), Some(response_to), Some(op_code)) =
        (le_i32(&reply, 0), le_i32(&reply, 8), le_i32(&reply, 12))
    else {
        return Err(format!("short reply to hello ({} bytes)", reply.len()));
    };
    if response_to != REQUEST_ID || op_code != OP_MSG || reply.len() < len as usize {
        return Err(format!(
            "not a MongoDB reply (responseTo {response_to}, opCode {op_code})"
        ));
    }
    if bson_ok(&reply[16..]) {
        Ok(())
    } else {
        Err("hello did not answer ok: 1".to_owned())
    }
}

/// An `OP_MSG` with one body section holding `{hello: 1, $db: "admin"}`.
fn mongodb_hello(request_id: i32) -> Vec<u8> {
    let mut doc = Vec::new();
    doc.extend_from_slice(&[0; 4]);
    doc.extend_from_slice(b"\x10hello\0");
    doc.extend_from_slice(&1i32.to_le_bytes());
    doc.extend_from_slice(b"\x02$db\0");
    doc.extend_from_slice(&6i32.to_le_bytes());
    doc.extend_from_slice(b"admin\0\0");
    let doc_len = doc.len() as i32;
    doc[..4].copy_from_slice(&doc_len.to_le_bytes());

    let mut msg = Vec::new();
    msg.extend_from_slice(&(16 + 4 + 1 + doc_len).to_le_bytes());
    msg.extend_from_slice(&request_id.to_le_bytes());
    msg.extend_from_slice(&0i32.to_le_bytes());
    msg.extend_from_slice(&2013i32.to_le_bytes());
    msg.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    msg.push(0); // section kind 0: body
    msg.extend_from_slice(&doc);
    msg
}

fn le_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(i32::from_le_bytes(b))
}

/// Whether the reply body holds an `ok` field equal to 1 (as double, int32 or int64).
fn bson_ok(body: &[u8]) -> bool {
    body.windows(4).enumerate().any(|(i, w)| {
        let value = &body[i + 4..];
        match (w[0], &w[1..]) {
            (0x01, b"ok\0") => value.get(..8).is_some_and(|v| v == 1f64.to_le_bytes()),
            (0x10, b"ok\0") => value.get(..4).is_some_and(|v| v == 1i32.to_le_bytes()),
            (0x12, b"ok\0") => value.get(..8).is_some_and(|v| v == 1i64.to_le_bytes()),
            _ => false,
        }
    })
}

/// DynamoDB: an HTTP `ListTables` call must answer 200 (or 400, e.g. for a rejected signature).
pub(super) fn dynamodb(port: u16) -> Result<(), String> {
    let body = "{}";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.ListTables\r\n\
         X-Amz-Date: 20200101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=dummy/20200101/us-east-1/dynamodb/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=0000\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply = exchange(port, request.as_bytes(), 64 << 10, |r| r.contains(&b'\n'))?;
    let status_line = first_line(&reply);
    match status_line.split_whitespace().nth(1) {
        Some("200" | "400") if status_line.starts_with("HTTP/") => Ok(()),
        _ => Err(format!("ListTables answered {status_line:?}")),
    }
}

/// The first line of a reply, cut to 80 characters.
fn first_line(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.lines().next().unwrap_or("").chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_message_is_well_formed() {
        let msg = mongodb_hello(7);
        assert_eq!(le_i32(&msg, 0), Some(msg.len() as i32));
        assert_eq!(le_i32(&msg, 4), Some(7));
        assert_eq!(le_i32(&msg, 12), Some(2013));
        let doc = &msg[21..];
        assert_eq!(le_i32(doc, 0), Some(doc.len() as i32));
        assert_eq!(doc.last(), Some(&0));
    }

    #[test]
    fn ok_field_is_found_in_any_numeric_type() {
        let mut double = b"\x08isWritablePrimary\0\x01\x01ok\0".to_vec();
        double.extend_from_slice(&1f64.to_le_bytes());
        assert!(bson_ok(&double));
        let mut int = b"\x10ok\0".to_vec();
        int.extend_from_slice(&1i32.to_le_bytes());
        assert!(bson_ok(&int));
        let mut zero = b"\x01ok\0".to_vec();
        zero.extend_from_slice(&0f64.to_le_bytes());
        assert!(!bson_ok(&zero));
    }
}
