//! A headless Chromium driven through chromedriver (W3C WebDriver: JSON over loopback HTTP),
//! for the web UI's tests that click and type: the chromedriver `tests/build.rs` found or
//! installed, on a free loopback port, killed when dropped.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::browser::chromium;
use super::common::wait_until;
use super::web_ui::http_with;

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session of it.
pub(crate) struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http_with(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            "",
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromedriver() -> &'static str {
    match option_env!("ORCHESTRA_TEST_CHROMEDRIVER") {
        Some(p) => p,
        None => {
            panic!("tests/build.rs found no chromedriver (the tests that need it are ignored then)")
        }
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium.
    pub(crate) fn start() -> Browser {
        // A free port: the OS picks one, chromedriver takes it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(driver.stdout.take().unwrap());
        let mut said = String::new();
        while !said.contains("started successfully") {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "chromedriver exited: {said}"
            );
            said.push_str(&line);
        }
        // Its later output is not read: drained so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = format!("127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-extensions", "--disable-background-networking",
                    "--window-size=1400,1300",
                    format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let (status, _, body) = http_with(&addr, "POST", "/session", &[], &caps.to_string());
        if status != 200 {
            // Not left behind by the failing test.
            let _ = driver.kill();
            let _ = driver.wait();
            panic!("new WebDriver session: {status} {body}");
        }
        let v: Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_owned();
        Browser {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    /// One WebDriver command: its `value`.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, _, text) = http_with(&self.addr, method, &path, &[], &body.to_string());
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
        assert_eq!(status, 200, "{method} {path}: {text}");
        v["value"].clone()
    }

    pub(crate) fn open(&self, url: &str) {
        self.call("POST", "/url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page: its result.
    pub(crate) fn eval(&self, script: &str, args: &[Value]) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": args }),
        )
    }

    /// The page's text (what a reader sees).
    pub(crate) fn text(&self) -> String {
        self.eval("return document.body.innerText;", &[])
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the page's text contains `what`; the text then.
    pub(crate) fn wait_text(&self, what: &str) -> String {
        wait_until(&format!("the page to show {what:?}"), || {
            let t = self.text();
            t.contains(what).then_some(t)
        })
    }

    /// The element `css` selects, once there is one (and it is enabled).
    fn element(&self, css: &str) -> String {
        wait_until(&format!("an enabled element {css}"), || {
            let found = self.eval(
                "const e = document.querySelector(arguments[0]); return !!e && !e.disabled;",
                &[json!(css)],
            );
            if found != json!(true) {
                return None;
            }
            let v = self.call(
                "POST",
                "/element",
                &json!({ "using": "css selector", "value": css }),
            );
            v[ELEMENT].as_str().map(str::to_owned)
        })
    }

    /// Clicks the element `css` selects (as a user does: the browser's own click).
    pub(crate) fn click(&self, css: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/click"), &json!({}));
    }

    /// Types `text` into the element `css` selects (keyboard input, as a user does).
    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            &json!({ "text": text }),
        );
    }

    /// Chooses the option with `value` of the `<select>` `css` selects.
    pub(crate) fn choose(&self, css: &str, value: &str) {
        self.element(css);
        let option = format!("{css} option[value=\"{value}\"]");
        self.click(&option);
    }
}
