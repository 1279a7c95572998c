//! The README's shell examples, run as written against a live instance:
//! the walk-through, then the resource-server section's introspection
//! example. Each `# …` line after a command is output the reader is
//! promised; they must appear, in order (`…` stands for anything).

use std::path::Path;

use crate::backend_tests;
use crate::helpers::{test_figment, Backend, Server, TestApp};

/// The first ```sh block after `heading` in the README.
fn block_after(readme: &str, heading: &str) -> String {
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("{heading} in the README"))..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = section[start..].find("```").expect("its end");
    section[start..start + end].to_owned()
}

/// The commands of `block` (comments dropped, and the lines that start
/// the service: the test has started it), and the output it promises.
fn commands_and_promises(block: &str) -> (String, Vec<String>) {
    let mut commands = String::new();
    let mut promised = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("# ") {
            Some(output) => promised.push(output.to_owned()),
            None if line.starts_with("cargo run") || line.starts_with("B=") => {}
            None => {
                commands.push_str(line);
                commands.push('\n');
            }
        }
    }
    (commands, promised)
}

/// Where `promised` first appears in `text` (ASCII case ignored; `…`
/// matches anything within a line): the end of the match.
fn find(text: &str, promised: &str) -> Option<usize> {
    let (text, promised) = (text.to_ascii_lowercase(), promised.to_ascii_lowercase());
    let parts: Vec<&str> = promised.split('…').collect();
    text.match_indices(parts[0]).find_map(|(start, first)| {
        let mut at = start + first.len();
        for part in &parts[1..] {
            let line_end = text[at..].find('\n').map_or(text.len(), |end| at + end);
            at += text[at..line_end].find(part)? + part.len();
        }
        Some(at)
    })
}

async fn the_readme_examples_work_as_written(backend: Backend) {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let (walk, mut promised) = commands_and_promises(&block_after(&readme, "## Walk-through"));
    let (introspection, more) = commands_and_promises(&block_after(&readme, "**Introspection (RFC 7662)**"));
    promised.extend(more);
    let app = TestApp::spawn(backend).await;
    let server = Server::start(test_figment(&app.db, &app.db.url(), &app.secret)).await;

    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\njwt-blocklist() {{ \"$JBL\" \"$@\"; }}\n{walk}\n{introspection}"))
        .env("B", server.url())
        .env("JBL", env!("CARGO_BIN_EXE_jwt-blocklist"))
        .env("DATABASE_URL", app.db.url())
        .env("ROCKET_JWT_SECRET", &app.secret)
        .env("ROCKET_DATA_DIR", app.db.folder())
        .env("ROCKET_LOG_LEVEL", "critical")
        .output()
        .await
        .expect("bash runs");
    server.stop().await;

    let stdout = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the examples failed:\n{stdout}\n{stderr}");
    assert!(promised.len() >= 10, "{promised:?}");
    let mut at = 0;
    for line in &promised {
        let found = find(&stdout[at..], line);
        at +=
            found.unwrap_or_else(|| panic!("the README promises {line:?}; the rest was:\n{}", &stdout[at..]));
    }
}

backend_tests!(the_readme_examples_work_as_written);
