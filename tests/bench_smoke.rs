//! A seconds-long run of the benchmark, so it cannot rot: every scenario runs end to end against
//! the real binaries, and only loose bounds are checked (CI machines are shared and noisy; the
//! real numbers come from `scripts/bench.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

#[test]
fn benchmark_smoke_run() {
    let out = std::env::temp_dir().join(format!("chatapi-bench-smoke-{}", std::process::id()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_chatapi-bench"))
        .args([
            "--smoke",
            "--chatapi",
            env!("CARGO_BIN_EXE_chatapi"),
            "--out",
        ])
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
    assert!(num("/ttft_1_client_ms/chatapi_p50") < 100.0);
    assert!(num("/cancellation_ms/chatapi_p99") < 100.0);
    assert!(num("/cancellation_ms/samples") >= 20.0);
    assert!(num("/throughput/chatapi_events_per_s") > 100.0);
    assert!(num("/memory/streams_held") >= 200.0);
    assert!(std::fs::read_to_string(out.join("results.md"))
        .unwrap()
        .contains("| metric |"));
    let _ = std::fs::remove_dir_all(out);
}
