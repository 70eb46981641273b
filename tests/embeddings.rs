//! chatapi's sentence vectors against the sentence-transformers library's own, for twenty fixed
//! sentences (`tests/data/minilm-reference.json`, made by `scripts/reference-embeddings.py`):
//! short, empty, accented, and one past the model's 256-token limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use chatapi::videos::embed::{cosine, Embedder};
use serde_json::Value;

const MODEL: &str = "models/all-MiniLM-L6-v2";

#[test]
fn vectors_match_sentence_transformers() {
    assert!(
        Path::new(MODEL).join("model.safetensors").exists(),
        "{MODEL} is missing: run scripts/fetch-model.sh"
    );
    let embedder = Embedder::load(Path::new(MODEL)).unwrap();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string("tests/data/minilm-reference.json").unwrap())
            .unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    assert_eq!(sentences.len(), 20);
    let texts: Vec<String> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    // In one call, so batches mix lengths: padding must not leak into the mean.
    let ours = embedder.embed(&texts).unwrap();
    let mut worst = f32::MAX;
    for (s, v) in sentences.iter().zip(&ours) {
        let want: Vec<f32> = s["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let c = cosine(v, &want);
        worst = worst.min(c);
        assert!(c >= 0.999, "{:?}: cosine {c}", s["text"]);
    }
    eprintln!("worst cosine to the reference: {worst}");
    // And the trap the issue names: unrelated texts are far apart once padding is masked.
    let unrelated = cosine(&ours[0], &ours[5]);
    assert!(unrelated < 0.3, "bicycle vs revenue: {unrelated}");
}
