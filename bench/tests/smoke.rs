//! A seconds-long run of the benchmark, so it cannot rot: every scenario runs end to end against
//! the real binaries and reports every figure. No timing is judged here (CI machines are shared
//! and noisy); the numbers come from `scripts/bench.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

#[test]
fn benchmark_smoke_run() {
    let out = std::env::temp_dir().join(format!("chatapi-bench-smoke-{}", std::process::id()));
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_chatapi-bench"));
    // The server is another package's binary, built beside this one by
    // `cargo test --workspace` (the README's test command).
    let chatapi = bench.with_file_name("chatapi");
    assert!(
        chatapi.exists(),
        "{} is not built: run `cargo build -p chatapi` (or the whole workspace's tests)",
        chatapi.display()
    );
    let status = std::process::Command::new(bench)
        // The repository's root, where the server's relative paths (models/) start.
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["--smoke", "--chatapi"])
        .arg(&chatapi)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "every stream of the smoke run must complete"
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let num = |path: &str| {
        results
            .pointer(path)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{path} missing in {results}"))
    };
    for figure in [
        "/ttft_1_client_ms/chatapi_p50",
        "/cancellation_ms/chatapi_p99",
        "/throughput/chatapi_events_per_s",
    ] {
        assert!(
            num(figure).is_finite() && num(figure) > 0.0,
            "{figure} in {results}"
        );
    }
    assert!(
        num("/cancellation_ms/samples") >= 20.0,
        "every hang-up was seen"
    );
    assert!(
        num("/memory/streams_held") >= 200.0,
        "every stream was held"
    );
    assert!(std::fs::read_to_string(out.join("results.md"))
        .unwrap()
        .contains("| metric |"));
    let _ = std::fs::remove_dir_all(out);
}
