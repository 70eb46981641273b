//! Summaries, chapters, highlights, gists and analyses of a video (`/v1/videos/{id}/summaries`,
//! `/gist`, `/analyze`), with the fake upstream: the exact shapes, chapters at segment edges,
//! highlights only at moments the timeline has, map-reduce over a long timeline, a JSON schema
//! met after one repair or refused, results kept and given back without the upstream, other
//! tenants, and bad input per field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::videos::{self, get_json, made, settled, settled_within, upload};
use common::{client, FakeUpstream, Reply, Server};
use reqwest::multipart::Part;
use serde_json::{json, Value};

const KEY: &str = "sk-digest";
const ACME: &str = "k-acme";

async fn server(upstream: &FakeUpstream, extra: &str) -> Server {
    let toml = format!(
        "[auth]\nkeys = [\"{KEY}\", {{ key = \"{ACME}\", tenant = \"acme\" }}]\n\
         [storage]\ndir = \"{}\"\n[video_chat]\n{extra}\n[videos]\nenabled = true\nocr = false\n\
         keyframes_min_per_minute = 0.1\nspeech_binary = \"\"\nspeech_model = \"\"\n",
        videos::storage().display()
    );
    Server::start(&[upstream], &toml).await
}

async fn post(s: &Server, key: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}{path}", s.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn garden(s: &Server) -> String {
    let (_, video) = upload(&s.url, KEY, &made().with_track()).await;
    let id = video["id"].as_str().unwrap().to_string();
    assert_eq!(settled(&s.url, &id, Some(KEY)).await["status"], "ready");
    id
}

/// What the upstream was asked in its `nth` request: the user's words and the grounding.
fn asked(upstream: &FakeUpstream, nth: usize) -> String {
    upstream.received()[nth].body["messages"].to_string()
}

#[tokio::test]
async fn summary_chapters_highlights_and_gist_in_twelve_labs_shapes() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let id = garden(&s).await;
    let path = |what: &str| format!("/v1/videos/{id}/{what}");

    upstream.push(Reply::text(&[
        "A garden tour: they plant tomatoes ",
        "and water the flowers.",
    ]));
    let (status, summary) = post(&s, KEY, &path("summaries"), json!({"type": "summary"})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        summary["summary"],
        "A garden tour: they plant tomatoes and water the flowers."
    );
    assert!(
        summary["id"].as_str().unwrap().starts_with("gen_"),
        "{summary}"
    );
    assert_eq!(summary["video_id"], id.as_str());
    assert!(
        summary["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{summary}"
    );
    // One stretch: one call, grounded in the whole stamped timeline.
    assert_eq!(upstream.received().len(), 1);
    assert!(
        asked(&upstream, 0).contains("[00:08]"),
        "{}",
        asked(&upstream, 0)
    );

    // A chapter a scene (the video's three), each from a call about that scene alone.
    for reply in [
        "Welcome\nThe tour begins.",
        "Planting tomatoes\nThey plant tomatoes.",
        "Watering - They water the flowers.",
    ] {
        upstream.push(Reply::text(&[reply]));
    }
    let (status, chapters) = post(&s, KEY, &path("summaries"), json!({"type": "chapter"})).await;
    assert_eq!(status, 200, "{chapters}");
    assert_eq!(
        chapters["chapters"],
        json!([
            {"chapter_number": 1, "start_sec": 0.0, "end_sec": 4.0, "chapter_title": "Welcome", "chapter_summary": "The tour begins."},
            {"chapter_number": 2, "start_sec": 4.0, "end_sec": 8.0, "chapter_title": "Planting tomatoes", "chapter_summary": "They plant tomatoes."},
            {"chapter_number": 3, "start_sec": 8.0, "end_sec": 12.0, "chapter_title": "Watering", "chapter_summary": "They water the flowers."},
        ]),
        "{chapters}"
    );
    assert!(
        asked(&upstream, 2).contains("[00:04] to [00:08]"),
        "{}",
        asked(&upstream, 2)
    );

    // Highlights only where the timeline has the moment: a made-up stamp whose words are
    // nowhere in the video is dropped.
    upstream.push(Reply::text(&[
        "[00:04] Planting - They plant tomatoes.\n[07:00] A dragon - It breathes fire.",
    ]));
    let (status, highlights) =
        post(&s, KEY, &path("summaries"), json!({"type": "highlight"})).await;
    assert_eq!(status, 200, "{highlights}");
    assert_eq!(
        highlights["highlights"],
        json!([{"start_sec": 4.0, "end_sec": 8.0, "highlight": "Planting", "highlight_summary": "They plant tomatoes."}]),
        "{highlights}"
    );

    // A gist: from a summary, then its three lines; only the types asked for.
    upstream.push(Reply::text(&[
        "A tour of a garden where tomatoes are planted.",
    ]));
    upstream.push(Reply::text(&[
        "Title: A Garden Tour\nTopics: gardening, tomatoes, flowers\nHashtags: #garden #tomatoes",
    ]));
    let (status, gist) = post(
        &s,
        KEY,
        &path("gist"),
        json!({"types": ["title", "hashtag"]}),
    )
    .await;
    assert_eq!(status, 200, "{gist}");
    assert_eq!(gist["title"], "A Garden Tour");
    assert_eq!(gist["hashtags"], json!(["#garden", "#tomatoes"]));
    assert!(gist.get("topics").is_none(), "{gist}");

    // Kept: asked again, the same result at once, nothing upstream; `regenerate` makes it anew.
    let before = upstream.received().len();
    let (_, again) = post(&s, KEY, &path("summaries"), json!({"type": "summary"})).await;
    assert_eq!(again, summary);
    assert_eq!(
        upstream.received().len(),
        before,
        "a kept result asks nothing upstream"
    );
    upstream.push(Reply::text(&["A new summary."]));
    let (_, fresh) = post(
        &s,
        KEY,
        &path("summaries"),
        json!({"type": "summary", "regenerate": true}),
    )
    .await;
    assert_eq!(fresh["summary"], "A new summary.");
    assert_eq!(fresh["id"], summary["id"], "the same request, the same id");
    let (_, kept) = post(&s, KEY, &path("summaries"), json!({"type": "summary"})).await;
    assert_eq!(
        kept["summary"], "A new summary.",
        "the regenerated one is kept"
    );
    // Another prompt is another result.
    upstream.push(Reply::text(&["Short."]));
    let (_, other) = post(
        &s,
        KEY,
        &path("summaries"),
        json!({"type": "summary", "prompt": "In five words."}),
    )
    .await;
    assert_ne!(other["id"], summary["id"]);
    assert!(asked(&upstream, upstream.received().len() - 1).contains("In five words."));

    // Deleted with the video.
    let r = client()
        .delete(format!("{}/v1/videos/{id}", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = post(&s, KEY, &path("summaries"), json!({"type": "summary"})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_analysis_meets_its_schema_after_one_repair_or_is_refused() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let id = garden(&s).await;
    let path = format!("/v1/videos/{id}/analyze");
    let schema = json!({
        "type": "object",
        "properties": {"vegetable": {"type": "string"}, "scenes": {"type": "integer"}},
        "required": ["vegetable", "scenes"],
    });
    let body = json!({
        "prompt": "Which vegetable is planted, and how many scenes are there?",
        "response_format": {"type": "json_schema", "json_schema": {"name": "facts", "schema": schema}},
    });
    upstream.push(Reply::text(&[
        "```json\n{\"vegetable\": \"tomatoes\", \"scenes\": \"three\"}\n```",
    ]));
    upstream.push(Reply::text(&[
        "{\"vegetable\": \"tomatoes\", \"scenes\": 3}",
    ]));
    let (status, analysis) = post(&s, KEY, &path, body.clone()).await;
    assert_eq!(status, 200, "{analysis}");
    assert_eq!(
        analysis["data"],
        json!({"vegetable": "tomatoes", "scenes": 3})
    );
    assert_eq!(upstream.received().len(), 2, "one answer and one repair");
    let repair = asked(&upstream, 1);
    assert!(
        repair.contains("scenes") && repair.contains("integer"),
        "{repair}"
    );

    // Wrong twice: refused, and nothing kept.
    let mut other = body.clone();
    other["prompt"] = json!("Which vegetable?");
    upstream.push(Reply::text(&["tomatoes"]));
    upstream.push(Reply::text(&["still tomatoes"]));
    let (status, error) = post(&s, KEY, &path, other.clone()).await;
    assert_eq!(status, 502, "{error}");
    assert_eq!(error["error"]["code"], "schema_unmet", "{error}");
    upstream.push(Reply::text(&[
        "{\"vegetable\": \"tomatoes\", \"scenes\": 3}",
    ]));
    let (status, _) = post(&s, KEY, &path, other).await;
    assert_eq!(status, 200, "a refused analysis was not kept");

    // Without a schema, the text.
    upstream.push(Reply::text(&["Tomatoes, at [00:04]."]));
    let (_, text) = post(&s, KEY, &path, json!({"prompt": "Which vegetable?"})).await;
    assert_eq!(text["data"], "Tomatoes, at [00:04].");
}

#[tokio::test]
async fn bad_input_other_tenants_and_unready_videos_are_refused_before_the_upstream() {
    let upstream = FakeUpstream::start().await;
    let s = server(&upstream, "").await;
    let id = garden(&s).await;
    let summaries = format!("/v1/videos/{id}/summaries");
    let cases = [
        (summaries.clone(), json!({"type": "chapters"}), 400, "body"),
        (summaries.clone(), json!({}), 400, "body"),
        (
            summaries.clone(),
            json!({"type": "summary", "colour": "red"}),
            400,
            "body",
        ),
        (
            summaries.clone(),
            json!({"type": "summary", "prompt": "x".repeat(2001)}),
            400,
            "prompt",
        ),
        (
            summaries.clone(),
            json!({"type": "summary", "persona": "nobody"}),
            404,
            "model",
        ),
        (
            format!("/v1/videos/{id}/gist"),
            json!({"types": []}),
            400,
            "types",
        ),
        (
            format!("/v1/videos/{id}/gist"),
            json!({"types": ["emoji"]}),
            400,
            "body",
        ),
        (
            format!("/v1/videos/{id}/analyze"),
            json!({"prompt": "  "}),
            400,
            "prompt",
        ),
        (
            format!("/v1/videos/{id}/analyze"),
            json!({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 5}}}}),
            400,
            "response_format.json_schema.schema",
        ),
        (
            "/v1/videos/vid_0000000000000000000000000000dead/summaries".to_string(),
            json!({"type": "summary"}),
            404,
            "",
        ),
    ];
    for (path, body, status, param) in cases {
        let (got, error) = post(&s, KEY, &path, body.clone()).await;
        assert_eq!(got, status, "{body}: {error}");
        if !param.is_empty() {
            assert_eq!(error["error"]["param"], param, "{body}: {error}");
        }
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    // Another tenant's video is missing to it.
    let (status, _) = post(&s, ACME, &summaries, json!({"type": "summary"})).await;
    assert_eq!(status, 404);
    // A video still processing: 409, named.
    let slow = tokio::task::spawn({
        let url = s.url.clone();
        async move { upload(&url, KEY, &made().speech()).await }
    });
    let (_, queued) = slow.await.unwrap();
    let queued_id = queued["id"].as_str().unwrap();
    let (status, error) = post(
        &s,
        KEY,
        &format!("/v1/videos/{queued_id}/summaries"),
        json!({"type": "summary"}),
    )
    .await;
    if status != 200 {
        assert_eq!(status, 409, "{error}");
        assert_eq!(error["error"]["code"], "video_not_ready");
    }
    assert!(upstream.received().len() <= 1, "bad requests went upstream");
}

#[tokio::test]
async fn a_two_hour_timeline_is_mapped_in_stretches_and_reduced() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(Reply::text(&[
        "A part about one subject.\nIt goes step by step.",
    ]));
    let s = server(&upstream, "timeline_tokens = 1000").await;
    let (file, srt) = common::known::two_hours_with_subtitles(&made().dir);
    let srt = std::fs::read(srt).unwrap();
    let form = videos::form(
        &file,
        vec![("subtitles", Part::bytes(srt).file_name("talk.srt"))],
    );
    let r = client()
        .post(format!("{}/v1/videos", s.url))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let video: Value = r.json().await.unwrap();
    let id = video["id"].as_str().unwrap().to_string();
    let ready = settled_within(&s.url, &id, Some(KEY), std::time::Duration::from_secs(300)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let timeline = get_json(&s.url, &format!("/v1/videos/{id}/timeline"), KEY).await;
    let edges: Vec<f64> = timeline["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| [s["start_s"].as_f64().unwrap(), s["end_s"].as_f64().unwrap()])
        .collect();

    // Twenty chapters, one call each, end to end, every time a segment edge.
    let (status, chapters) = post(
        &s,
        KEY,
        &format!("/v1/videos/{id}/summaries"),
        json!({"type": "chapter"}),
    )
    .await;
    assert_eq!(status, 200, "{chapters}");
    let chapters = chapters["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 20);
    assert_eq!(upstream.received().len(), 20);
    assert_eq!(chapters[0]["start_sec"], 0.0);
    for pair in chapters.windows(2) {
        assert_eq!(pair[0]["end_sec"], pair[1]["start_sec"], "{pair:?}");
    }
    for c in chapters {
        for t in [&c["start_sec"], &c["end_sec"]] {
            assert!(
                edges.contains(&t.as_f64().unwrap()),
                "{t} is not in the timeline"
            );
        }
    }

    // A summary: each stretch that fits the budget, then one call over their summaries.
    let before = upstream.received().len();
    let (status, summary) = post(
        &s,
        KEY,
        &format!("/v1/videos/{id}/summaries"),
        json!({"type": "summary"}),
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    let calls = upstream.received().len() - before;
    assert!(
        calls >= 4,
        "{calls} calls: the timeline was not cut into stretches"
    );
    let reduce = asked(&upstream, upstream.received().len() - 1);
    assert!(
        reduce.contains("Summaries of consecutive parts"),
        "{reduce}"
    );
    assert!(
        reduce.contains("1:59:30") || reduce.contains("2:00:00"),
        "the last stretch reaches the end: {reduce}"
    );
    // Each stretch fits the budget whole: none of it cut to what seems relevant.
    for n in before..upstream.received().len() - 1 {
        let prompt = asked(&upstream, n);
        assert!(prompt.len() < 12_000, "a stretch of {} bytes", prompt.len());
        assert!(
            !prompt.contains("Only the parts of the timeline"),
            "a stretch was cut: {prompt}"
        );
    }
}
