//! A fake of the GitHub REST API for tests/review_action.rs: python3's
//! http.server serving the three calls ci/phasegate-review.sh makes, on
//! 127.0.0.1, recording each request.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A fake of the three REST endpoints the script calls, recording each
/// request as a JSON line; pull request 7 of o/r starts with one comment
/// of someone else's. It serves for at most 120 s.
const FAKE_API: &str = r#"
import json, sys, time
from urllib.parse import parse_qs, urlparse
from http.server import BaseHTTPRequestHandler, HTTPServer
log_path, port_path = sys.argv[1], sys.argv[2]
comments = [{"id": 1, "body": "LGTM", "user": {"login": "someone"}}]
next_id = [100]
def record(handler, body):
    with open(log_path, "a") as f:
        f.write(json.dumps({"method": handler.command, "path": handler.path,
                            "auth": handler.headers.get("Authorization"), "body": body}) + "\n")
class H(BaseHTTPRequestHandler):
    def reply(self, code, value):
        data = json.dumps(value).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def payload(self):
        n = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(n) or b"{}")
    def do_GET(self):
        record(self, None)
        if self.path.startswith("/repos/o/r/issues/7/comments"):
            query = parse_qs(urlparse(self.path).query)
            page = int(query.get("page", ["1"])[0])
            self.reply(200, comments if page == 1 else [])
        else:
            self.reply(404, {"message": "Not Found"})
    def do_POST(self):
        p = self.payload()
        record(self, p.get("body"))
        if self.path == "/repos/o/r/issues/7/comments":
            c = {"id": next_id[0], "body": p["body"], "user": {"login": "github-actions[bot]"}}
            next_id[0] += 1
            comments.append(c)
            self.reply(201, c)
        else:
            self.reply(404, {"message": "Not Found"})
    def do_PATCH(self):
        p = self.payload()
        record(self, p.get("body"))
        for c in comments:
            if self.path == "/repos/o/r/issues/comments/%d" % c["id"]:
                c["body"] = p["body"]
                return self.reply(200, c)
        self.reply(404, {"message": "Not Found"})
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", 0), H)
server.timeout = 1
with open(port_path, "w") as f:
    f.write(str(server.server_address[1]))
deadline = time.time() + 120
while time.time() < deadline:
    server.handle_request()
"#;

/// The fake API, killed on drop.
pub struct FakeApi {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl FakeApi {
    pub fn start(dir: &Path) -> FakeApi {
        let script = dir.join("fake_api.py");
        std::fs::write(&script, FAKE_API).expect("write");
        let log = dir.join("requests.jsonl");
        let port_file = dir.join("port");
        let child = Command::new("python3")
            .arg(&script)
            .arg(&log)
            .arg(&port_file)
            .spawn()
            .expect("python3 runs");
        let start = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file)
                && !p.is_empty()
            {
                break p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the fake API did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        FakeApi {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn requests(&self) -> Vec<Value> {
        let Ok(f) = std::fs::File::open(&self.log) else {
            return Vec::new();
        };
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .map(|l| serde_json::from_str(&l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
