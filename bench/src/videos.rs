//! `chatapi-bench videos`: the video library's processing cost on this machine. Makes a talk
//! (720p, 30 fps, about 3 Mb/s: a slide change every 20 s, film grain so the decoder has real
//! work, espeak-ng speech throughout; kept in `--out` and reused), uploads it to a release chatapi with speech-to-text, waits for `ready`, and reports
//! the time as a fraction of the video's length, each step's share, the server's peak RSS (and
//! its whole process tree's, programs included) and the transcript's word error rate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procs::{rss_of, spawn_chatapi};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";

/// Sentences spoken in turn; varied so the recogniser cannot lean on repetition.
const SENTENCES: &[&str] = &[
    "Good morning and welcome to this talk about building reliable software.",
    "Today we look at how a server handles video uploads from many users.",
    "First the file is checked so that broken uploads are refused early.",
    "Then the sound is turned into text with a small speech model.",
    "Each slide is found by looking for changes in the picture.",
    "The words on every slide are read with optical character recognition.",
    "All of this becomes a timeline that a language model can read.",
    "When a user asks a question the answer points to the right moment.",
    "Small machines can do this work if every step is careful with memory.",
    "We measure each step so that nobody has to guess where the time goes.",
    "Thank you for listening and please send your questions after the break.",
];

pub async fn run(chatapi: &Path, out: &Path, seconds: u32, repeat: u32) -> bool {
    std::fs::create_dir_all(out).unwrap();
    let (video, spoken) = make_talk(out, seconds);
    let (video, spoken) = repeated(out, &video, &spoken, repeat);
    let seconds = seconds * repeat;
    let store = std::env::temp_dir().join(format!("chatapi-bench-videos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let release = chatapi.parent().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[local]\nenabled = false\n[storage]\ndir = \"{}\"\n\
         [videos]\nspeech_binary = \"{}\"\nspeech_model = \"models/ggml-tiny.en-q8_0.bin\"\n\
         max_bytes = 17179869184\nmax_duration = \"25h\"\n",
        store.display(),
        release.join("chatapi-whisper").display()
    );
    let config_path = store.with_extension("toml");
    std::fs::write(&config_path, config).unwrap();
    let (mut child, addr) = spawn_chatapi(chatapi, &config_path, true).await;
    let pid = child.id().unwrap();
    let base = format!("http://{addr}");
    let idle_rss = rss_of(pid);
    println!("uploading {} ({} s)", video.display(), seconds);
    let started = Instant::now();
    let id = upload(&base, &video);
    let uploaded = started.elapsed();
    let client = reqwest::Client::new();
    let (mut peak_server, mut peak_tree) = (0u64, 0u64);
    let video_json = loop {
        peak_server = peak_server.max(rss_of(pid));
        peak_tree = peak_tree.max(tree_rss(pid));
        let v = get_json(&client, &format!("{base}/v1/videos/{id}")).await;
        if v["status"] == "ready" || v["status"] == "failed" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let processing = started.elapsed() - uploaded;
    assert_eq!(video_json["status"], "ready", "{video_json}");
    let timeline = get_json(&client, &format!("{base}/v1/videos/{id}/timeline")).await;
    let heard: String = timeline["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["transcript"].as_str().unwrap_or("").to_string() + " ")
        .collect();
    let wer = word_error_rate(&spoken, &heard);
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_file(&config_path);

    let duration = video_json["duration_s"].as_f64().unwrap();
    let steps = &video_json["steps"]["seconds"];
    // Shares of the whole processing time; the transcript and the keyframes run side by side
    // (their shares overlap, `transcript_and_keyframes` is the two together).
    let total_steps = processing.as_secs_f64();
    let mut md = format!(
        "# Video processing, {}\n\n{}-second 1280x720 30 fps talk, espeak-ng speech, a slide every 20 s; \
         whisper tiny.en (greedy), 1 worker.\n\n\
         | measure | value |\n|---|---|\n\
         | processing time | {:.1} s |\n| as a fraction of the video's length | {:.3}× |\n\
         | upload (loopback) | {:.2} s |\n| server peak RSS | {:.0} MiB (idle {:.0} MiB) |\n\
         | process tree peak RSS (server + ffmpeg/whisper/tesseract) | {:.0} MiB |\n\
         | keyframes | {} |\n| transcript word error rate | {:.1} % |\n\n| step | seconds | share of the processing time |\n|---|---|---|\n",
        super::machine(),
        seconds,
        processing.as_secs_f64(),
        processing.as_secs_f64() / duration,
        uploaded.as_secs_f64(),
        peak_server as f64 / 1048576.0,
        idle_rss as f64 / 1048576.0,
        peak_tree as f64 / 1048576.0,
        video_json["steps"]["keyframes"]["count"],
        wer * 100.0,
    );
    for (step, secs) in steps.as_object().unwrap() {
        let secs = secs.as_f64().unwrap_or(0.0);
        md.push_str(&format!(
            "| {step} | {secs:.1} | {:.0} % |\n",
            100.0 * secs / total_steps
        ));
    }
    println!("{md}");
    std::fs::write(out.join("videos.md"), &md).unwrap();
    let record = json!({
        "seconds": seconds, "processing_s": processing.as_secs_f64(), "ratio": processing.as_secs_f64() / duration,
        "server_peak_rss": peak_server, "tree_peak_rss": peak_tree, "idle_rss": idle_rss, "wer": wer, "steps": steps,
    });
    std::fs::write(
        out.join("videos.json"),
        serde_json::to_string_pretty(&record).unwrap(),
    )
    .unwrap();
    true
}

/// The talk video and the words spoken in it (made once; reused while the file is there).
pub(crate) fn make_talk(out: &Path, seconds: u32) -> (PathBuf, String) {
    let video = out.join(format!("talk-{seconds}s.mp4"));
    let words_per_second = 150.0 / 60.0;
    let mut spoken = String::new();
    let mut i = 0;
    while (spoken.split_whitespace().count() as f64) < f64::from(seconds) * words_per_second * 0.95
    {
        spoken.push_str(SENTENCES[i % SENTENCES.len()]);
        spoken.push(' ');
        i += 1;
    }
    // The speech runs slightly past the end and is cut there; judge only what fits.
    if !video.exists() {
        let wav = out.join("talk.wav");
        let text = out.join("talk.txt");
        std::fs::write(&text, &spoken).unwrap();
        must(
            Command::new("espeak-ng")
                .args(["-v", "en-us", "-s", "150", "-w"])
                .arg(&wav)
                .arg("-f")
                .arg(&text),
        );
        let source = format!(
            "color=c=0xC03030:s=1280x720:r=30:d={seconds},hue=h='floor(t/20)*67',\
             drawtext=fontfile={FONT}:text='Slide %{{eif\\:floor(t/20)+1\\:d}}':fontsize=96:fontcolor=white:x=(w-text_w)/2:y=(h-text_h)/2,\
             noise=c0s=14:allf=t"
        );
        must(
            Command::new("ffmpeg")
                .args([
                    "-y",
                    "-loglevel",
                    "error",
                    "-f",
                    "lavfi",
                    "-i",
                    &source,
                    "-i",
                ])
                .arg(&wav)
                .args([
                    "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-b:v",
                    "3M", "-maxrate", "3M", "-bufsize", "6M",
                ])
                .args(["-c:a", "aac", "-ar", "48000", "-t", &seconds.to_string()])
                .arg(&video),
        );
        let _ = std::fs::remove_file(&wav);
    }
    // Words spoken within the video's length, at espeak-ng's rate.
    let fits = (f64::from(seconds) * words_per_second) as usize;
    let spoken: Vec<&str> = spoken.split_whitespace().take(fits).collect();
    (video, spoken.join(" "))
}

/// `video` played `times` times over, as one file (streams copied, nothing encoded), and the
/// words spoken in it.
fn repeated(out: &Path, video: &Path, spoken: &str, times: u32) -> (PathBuf, String) {
    if times == 1 {
        return (video.to_path_buf(), spoken.to_string());
    }
    let stem = video.file_stem().unwrap().to_string_lossy();
    let long = out.join(format!("{stem}-x{times}.mp4"));
    if !long.exists() {
        let list = out.join(format!("{stem}-x{times}.txt"));
        let line = format!("file '{}'\n", video.canonicalize().unwrap().display());
        std::fs::write(&list, line.repeat(times as usize)).unwrap();
        must(
            Command::new("ffmpeg")
                .args([
                    "-y",
                    "-loglevel",
                    "error",
                    "-f",
                    "concat",
                    "-safe",
                    "0",
                    "-i",
                ])
                .arg(&list)
                .args(["-c", "copy"])
                .arg(&long),
        );
    }
    let words = vec![spoken; times as usize].join(" ");
    (long, words)
}

fn must(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Resident memory of a process and all its descendants (children are listed under the thread
/// that started them, so every thread's list is read).
fn tree_rss(pid: u32) -> u64 {
    let mut total = rss_of(pid);
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    for task in tasks {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            total += tree_rss(child);
        }
    }
    total
}

/// Word-level edit distance over the reference's length, lower-cased, punctuation dropped.
pub(crate) fn word_error_rate(reference: &str, heard: &str) -> f64 {
    let norm = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect::<String>()
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (r, h) = (norm(reference), norm(heard));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut row = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            row[j + 1] = (prev[j] + usize::from(rw != hw))
                .min(prev[j + 1] + 1)
                .min(row[j] + 1);
        }
        prev = row;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// Uploads `video` with curl (streamed from disk, as a caller would) and gives its id.
pub(crate) fn upload(base: &str, video: &Path) -> String {
    upload_with(base, video, &[])
}

/// `upload`, with more files in the form (`subtitles`).
pub(crate) fn upload_with(base: &str, video: &Path, parts: &[(&str, &Path)]) -> String {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-F"])
        .arg(format!("file=@{}", video.display()));
    for (name, file) in parts {
        curl.arg("-F").arg(format!("{name}=@{}", file.display()));
    }
    let upload = curl.arg(format!("{base}/v1/videos")).output().unwrap();
    let created: Value = serde_json::from_slice(&upload.stdout).unwrap();
    created["id"].as_str().expect("upload refused").to_string()
}

/// Waits until video `id` is processed (the benchmark stops if it failed).
pub(crate) async fn ready(client: &reqwest::Client, base: &str, id: &str) {
    loop {
        let v = get_json(client, &format!("{base}/v1/videos/{id}")).await;
        if v["status"] == "ready" {
            return;
        }
        assert_ne!(v["status"], "failed", "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&body).unwrap()
}
