//! The mock refuses requests that break the spec with `422` and the violations, unless told
//! to be lenient.

use std::io::{Read, Write};
use std::net::TcpStream;
use tokenkit_mock::MockServer;

fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Sends raw HTTP and returns the status line and the body.
fn send(mock: &MockServer, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(mock.addr()).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    // The mock serves the connection until the client is done with it.
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// Vault.ist's refresh without its required `partnerId` header, and with a body that is not
/// the documented one.
const BROKEN: &str = "POST /v1/auth/token HTTP/1.1\r\nHost: x\r\ngrantType: refresh_token\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"token\": 5}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_breaks_the_spec_gets_422_with_the_violations() {
    let provider = tokenkit_mock::load(workspace().join("specs/vaultist.yaml")).unwrap();
    let mock = MockServer::start(provider).await.unwrap();
    let (status, body) = tokio::task::block_in_place(|| send(&mock, BROKEN));
    assert!(status.contains("422"), "{status}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 422);
    let violations = problem["violations"].as_array().unwrap();
    let text = serde_json::to_string(violations).unwrap();
    assert!(text.contains("partnerId"), "{text}");
    assert!(text.contains("refreshToken"), "{text}");
    assert_eq!(mock.violations().len(), violations.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lenient_mock_answers_anyway() {
    let provider = tokenkit_mock::load(workspace().join("specs/vaultist.yaml")).unwrap();
    let mock = MockServer::start(provider).await.unwrap();
    mock.lenient();
    let (status, _) = tokio::task::block_in_place(|| send(&mock, BROKEN));
    assert!(status.contains("200"), "{status}");
    assert!(
        !mock.violations().is_empty(),
        "the violations are still recorded"
    );
}
