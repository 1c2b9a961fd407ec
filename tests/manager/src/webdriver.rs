//! Just enough W3C WebDriver to drive Debian's Chromium headless through `chromedriver` on
//! 127.0.0.1: open a page, read the URL and an element's text, click, take a screenshot. A
//! dozen JSON calls over the HTTP client the runtime already has.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokenkit::reqwest;

/// The element key of W3C WebDriver's element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running `chromedriver`, stopped when dropped.
pub struct ChromeDriver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The first of `candidates` that exists, else the name for `PATH`.
fn binary(candidates: &[&str]) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(candidates[candidates.len() - 1]))
}

impl ChromeDriver {
    /// Starts `chromedriver` on a free port of 127.0.0.1 and waits until it is ready.
    pub async fn start() -> Self {
        let port = crate::free_port();
        let driver = binary(&["/usr/bin/chromedriver", "chromedriver"]);
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let url = format!("http://127.0.0.1:{port}");
        let profile = crate::scratch(&format!("chromium-profile-{port}"));
        let driver = Self {
            child,
            url,
            profile,
        };
        let status = format!("{}/status", driver.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(answer) = reqwest::get(&status).await
                && let Ok(json) = answer.json::<Value>().await
                && json["value"]["ready"] == true
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver never got ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new headless Chromium window.
    pub async fn session(&self) -> Session {
        let chromium = binary(&["/usr/bin/chromium", "chromium"]);
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [
                            "--headless=new",
                            // Root in CI containers has no sandbox to give.
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=900,700",
                            format!("--user-data-dir={}", self.profile.display()),
                        ],
                    },
                },
            },
        });
        let http = reqwest::Client::new();
        let answer = call(
            http.post(format!("{}/session", self.url))
                .json(&capabilities),
        )
        .await;
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        Session {
            http,
            base: format!("{}/session/{id}", self.url),
        }
    }
}

/// Sends a WebDriver command; its `value`, or a panic with the driver's error.
async fn call(request: reqwest::RequestBuilder) -> Value {
    try_call(request).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Sends a WebDriver command; its `value`, or the driver's error.
async fn try_call(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.expect("chromedriver answered");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON answer");
    if status.is_success() {
        Ok(body["value"].clone())
    } else {
        Err(format!("WebDriver error {status}: {body}"))
    }
}

/// How long the helpers wait for a page, an element or a URL.
const PATIENCE: Duration = Duration::from_secs(30);

/// One browser window.
pub struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    async fn post(&self, path: &str, body: Value) -> Value {
        call(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    async fn get(&self, path: &str) -> Value {
        call(self.http.get(format!("{}{path}", self.base))).await
    }

    /// Opens `url` (and waits for its load).
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The page's URL.
    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the page's URL starts with `prefix` (a navigation is the event) and its
    /// document has loaded; returns the URL. (The URL changes while the new document is still
    /// on its way: a command sent then is aborted by the navigation.)
    pub async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.url().await;
            if url.starts_with(prefix) && self.loaded().await {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "the browser stayed at {url}, not {prefix}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the page's document has loaded (`document.readyState` is `complete`); false
    /// while a navigation replaces it.
    async fn loaded(&self) -> bool {
        let script = json!({ "script": "return document.readyState", "args": [] });
        let url = format!("{}/execute/sync", self.base);
        try_call(self.http.post(url).json(&script))
            .await
            .is_ok_and(|state| state == "complete")
    }

    /// The element `css` selects, waited for: a page still loading, or one a click is
    /// replacing, has none yet (or aborts the lookup).
    async fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let query = json!({ "using": "css selector", "value": css });
        loop {
            let url = format!("{}/element", self.base);
            let found = try_call(self.http.post(url).json(&query)).await;
            if let Some(id) = found.as_ref().ok().and_then(|f| f[ELEMENT].as_str()) {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css}: {found:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Types `text` into the element `css` selects (a form field), in place of what it held.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    /// The text of the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        let text = self.get(&format!("/element/{id}/text")).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Saves a PNG of the window at `path` (its directory made).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.get("/screenshot").await;
        let bytes = STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, bytes).expect("screenshot written");
    }

    /// Closes the window.
    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

/// Where the browser tests' screenshots go: `target/browser-screenshots` (or under
/// `CARGO_TARGET_DIR`), kept as CI artifacts.
pub fn screenshots() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace().join("target"))
        .join("browser-screenshots")
}
