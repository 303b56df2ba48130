//! The service binary as an operator starts it: its log, when not on a terminal, is plain text,
//! and it says when the open-file limit cannot carry the connection cap.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the binary on a free port with `args`, reads its log until it listens, stops it.
fn startup_log(args: &[&str], soft_files: Option<u64>) -> String {
    let program = env!("CARGO_BIN_EXE_room-chat");
    let mut command = match soft_files {
        // Under a low open-file limit (soft and hard), set by the shell that execs it.
        Some(files) => {
            let mut shell = Command::new("sh");
            shell.args([
                "-c",
                &format!("ulimit -n {files} && exec \"$0\" \"$@\""),
                program,
            ]);
            shell
        }
        None => Command::new(program),
    };
    command
        .args(["--port", "0"])
        .args(args)
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains("listening on") {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    log
}

#[test]
fn the_log_is_plain_text_when_not_on_a_terminal() {
    let log = startup_log(&[], None);
    assert!(log.contains("listening on"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a piped log: {log:?}"
    );
}

#[test]
fn an_open_file_limit_below_the_cap_is_reported() {
    let log = startup_log(&["--max-connections", "5000"], Some(1024));
    assert!(log.contains("listening on"), "{log}");
    assert!(
        log.contains("open-file limit is below what --max-connections needs"),
        "{log}"
    );
    let fine = startup_log(
        &[
            "--max-connections",
            "100",
            "--max-pending-connections",
            "100",
        ],
        Some(1024),
    );
    assert!(!fine.contains("open-file limit is below"), "{fine}");
}
