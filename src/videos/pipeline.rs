//! One video's processing, in order: fetch (URL ingest), probe, transcript, keyframes, on-screen
//! text, captions, timeline. Each step records what it produced in the video's `steps` as it
//! ends, so a caller polling the video sees progress. A step that can only make the timeline
//! poorer (no OCR installed, no speech-to-text configured) says so in its note instead of
//! failing the video; a file that is not a usable video fails it with a sentence.

use tokio_util::sync::CancellationToken;

use super::download::{self, Limits};
use super::keyframes::{self, Settings};
use super::model::{CountStep, Keyframe, Segment, Source, Steps, TranscriptSource, TranscriptStep};
use super::speech::{self, Recogniser};
use super::store::Metadata;
use super::subtitles::{self, Cue};
use super::{ocr, probe, programs, timeline, JobError, Library};

pub struct Done {
    pub steps: Steps,
    pub keyframes: Vec<Keyframe>,
    pub segments: Vec<Segment>,
    /// One per segment, in order; empty without an embedding model.
    pub vectors: Vec<Vec<f32>>,
}

pub async fn process(
    library: &Library,
    id: &str,
    cancel: &CancellationToken,
) -> Result<Done, JobError> {
    let config = &library.config;
    let limit = config.step_timeout;
    let dir = library.video_dir(id);
    let video = library.store.get(id).await?.ok_or(JobError::Cancelled)?;
    let source = dir.join("source");
    let mut steps = Steps::default();
    let mut clock = std::time::Instant::now();
    let mut lap = |steps: &mut Steps, name: &str| {
        let now = std::time::Instant::now();
        let took = (now - clock).as_secs_f64();
        clock = now;
        steps.seconds.insert(name.to_string(), round_ms(took));
    };

    if !tokio::fs::try_exists(&source).await.unwrap_or(false) {
        let Source { url: Some(url), .. } = &video.source else {
            return Err(JobError::Internal(
                "the uploaded file is missing from storage".into(),
            ));
        };
        let limits = Limits {
            max_bytes: config.max_bytes,
            timeout: config.url_timeout,
            max_redirects: config.url_max_redirects,
            allow_private: config.allow_private_urls,
        };
        let bytes = download::fetch(url, &source, &limits, cancel).await?;
        library.store.save_bytes(id, bytes).await?;
        lap(&mut steps, "download");
    }
    if tokio::fs::metadata(&source)
        .await
        .map(|m| m.len())
        .unwrap_or(0)
        == 0
    {
        return Err(JobError::Failed("the file is empty".into()));
    }

    let probe = probe::probe(&source, limit, cancel).await?;
    lap(&mut steps, "probe");
    library
        .store
        .save_metadata(
            id,
            &Metadata {
                duration_s: probe.duration_s,
                width: probe.width,
                height: probe.height,
                has_audio: probe.has_audio,
            },
        )
        .await?;
    if probe.duration_s > config.max_duration.as_secs_f64() {
        return Err(JobError::Failed(format!(
            "the video is {} long; this server takes videos up to {} (videos.max_duration)",
            humantime::format_duration(std::time::Duration::from_secs(probe.duration_s as u64)),
            humantime::format_duration(config.max_duration),
        )));
    }

    // The sound and the picture are worked on at once: speech-to-text and decoding each leave
    // part of the cores idle when run alone. Either failing stops the other (its program is
    // killed when its future is dropped).
    let settings = Settings {
        threshold: config.scene_threshold,
        min_per_minute: config.keyframes_min_per_minute,
        max_per_minute: config.keyframes_max_per_minute,
        max_frames: config.max_keyframes,
    };
    let ((cues, transcript, heard_s), (found, seen_s)) = tokio::try_join!(
        async {
            let started = std::time::Instant::now();
            let (cues, step) = transcript(library, &video, &probe, &dir, cancel).await?;
            Ok::<_, JobError>((cues, step, started.elapsed()))
        },
        async {
            let started = std::time::Instant::now();
            // A rerun after a crash starts from a clean set of frames.
            clear_keyframes(&dir).await;
            let found =
                keyframes::extract(&source, &dir, &settings, probe.duration_s, limit, cancel)
                    .await?;
            Ok((found, started.elapsed()))
        },
    )?;
    steps.transcript = Some(transcript);
    lap(&mut steps, "transcript_and_keyframes");
    for (name, took) in [("transcript", heard_s), ("keyframes", seen_s)] {
        steps
            .seconds
            .insert(name.to_string(), round_ms(took.as_secs_f64()));
    }
    let mut frames: Vec<Keyframe> = found
        .times
        .iter()
        .enumerate()
        .map(|(i, &time_s)| Keyframe {
            index: i as u32,
            time_s,
            ocr_text: String::new(),
            caption: String::new(),
        })
        .collect();
    steps.keyframes = Some(CountStep {
        count: frames.len(),
        note: Some(format!(
            "cuts found decoding {:.0} % of the picture",
            100.0 * found.decoded_share.min(1.0)
        )),
    });
    library.store.save_steps(id, &steps).await?;

    steps.ocr = Some(read_screens(library, &dir, &mut frames, cancel).await?);
    lap(&mut steps, "ocr");
    library.store.save_steps(id, &steps).await?;

    steps.captions = Some(describe(library, &dir, &mut frames, cancel).await?);
    lap(&mut steps, "captions");
    let segments = timeline::build(probe.duration_s, &frames, &cues);
    // Counted here, once, off the runtime: tokenizing a long timeline takes milliseconds that a
    // chat about it must not spend.
    let stop = cancel.clone();
    let segments = programs::in_background("counting the timeline's tokens", move || {
        timeline::count_tokens(segments, || stop.is_cancelled())
    })
    .await?
    .ok_or(JobError::Cancelled)?;
    let (vectors, embedded) = embed_segments(library, &segments, cancel).await?;
    steps.embeddings = Some(embedded);
    lap(&mut steps, "embeddings");
    Ok(Done {
        steps,
        keyframes: frames,
        segments,
        vectors,
    })
}

/// Fewer words said than this and a segment is embedded with its neighbours' spoken words too: a
/// short line ("Yes.", "Thank you so much.") means little on its own, where a sentence does (and
/// borrowed words would draw a search for the neighbour's sentence to it). What is on screen or seen is its own scene's and
/// never lent to a neighbour: a slide's words are the slide's, and a search for them must land
/// on that slide, not on the one before.
const SHORT_SEGMENT_WORDS: usize = 6;

/// A vector per segment, for search by meaning, made off the runtime. Without a model: none,
/// and the step says why (the video is ready all the same, searchable by keyword).
pub async fn embed_segments(
    library: &Library,
    segments: &[Segment],
    cancel: &CancellationToken,
) -> Result<(Vec<Vec<f32>>, CountStep), JobError> {
    let Some(embedder) = library.embedder().await else {
        let why = if library.config.embedding_model.as_os_str().is_empty() {
            "no embedding model is configured (videos.embedding_model): search by keyword only"
        } else {
            "the embedding model is not installed (scripts/fetch-model.sh): search by keyword only"
        };
        return Ok((
            Vec::new(),
            CountStep {
                count: 0,
                note: Some(why.into()),
            },
        ));
    };
    let texts: Vec<String> = (0..segments.len())
        .map(|i| {
            let own = segments[i].text();
            let said = segments[i].transcript.split_whitespace().count();
            if said == 0 || said >= SHORT_SEGMENT_WORDS {
                return cut(own);
            }
            let spoken = |j: usize| segments.get(j).map(|s| s.transcript.as_str());
            let before = i.checked_sub(1).and_then(spoken).unwrap_or_default();
            let after = spoken(i + 1).unwrap_or_default();
            let text = [before, own.as_str(), after]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            cut(text)
        })
        .collect();
    // Stops between batches when the video is deleted or the server stops: the blocking
    // thread is not held past its job.
    let stop = cancel.clone();
    let vectors = programs::in_background("embedding", move || {
        embedder.embed_until(&texts, || stop.is_cancelled())
    })
    .await?
    .map_err(|e| JobError::Internal(e.to_string()))?
    .ok_or(JobError::Cancelled)?;
    let count = vectors.len();
    Ok((vectors, CountStep { count, note: None }))
}

/// The model reads 256 tokens of a text; tokenizing far more than that is CPU spent on nothing.
fn cut(mut text: String) -> String {
    const MAX_CHARS: usize = 4_000;
    if let Some((at, _)) = text.char_indices().nth(MAX_CHARS) {
        text.truncate(at);
    }
    text
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// The best transcript there is: an uploaded subtitles file, else a text subtitle track, else
/// speech-to-text, else none (and why).
async fn transcript(
    library: &Library,
    video: &super::model::Video,
    probe: &probe::Probe,
    dir: &std::path::Path,
    cancel: &CancellationToken,
) -> Result<(Vec<Cue>, TranscriptStep), JobError> {
    let config = &library.config;
    let limit = config.step_timeout;
    let step = |source, cues: &[Cue], note: Option<String>| TranscriptStep {
        source,
        cues: cues.len(),
        note,
    };
    let mut uploaded = None;
    if video.source.subtitles_file {
        for ext in ["srt", "vtt"] {
            let file = dir.join(format!("subtitles.{ext}"));
            if tokio::fs::try_exists(&file).await.unwrap_or(false) {
                uploaded = Some(file);
                break;
            }
        }
    }
    let source = dir.join("source");
    let subtitles = match (&uploaded, probe.text_subtitle_track) {
        (Some(file), _) => Some((subtitles::From::File(file), TranscriptSource::SubtitlesFile)),
        (None, Some(track)) => Some((
            subtitles::From::Track(&source, track),
            TranscriptSource::EmbeddedSubtitles,
        )),
        (None, None) => None,
    };
    if let Some((from, kind)) = subtitles {
        let cues = subtitles::read(from, probe.duration_s, limit, cancel).await?;
        let s = step(kind, &cues, None);
        return Ok((cues, s));
    }
    if !probe.has_audio {
        return Ok((
            Vec::new(),
            step(
                TranscriptSource::None,
                &[],
                Some("the video has no sound and no subtitles".into()),
            ),
        ));
    }
    if config.speech_binary.as_os_str().is_empty() {
        return Ok((
            Vec::new(),
            step(
                TranscriptSource::None,
                &[],
                Some("no transcript: the video has no subtitles and speech-to-text is not set up on this server (videos.speech_binary)".into()),
            ),
        ));
    }
    if !tokio::fs::try_exists(&config.speech_model)
        .await
        .unwrap_or(false)
    {
        // The path is the operator's business (logged), not the caller's.
        tracing::warn!(model = %config.speech_model.display(), "speech-to-text model missing");
        let note = "no transcript: the speech-to-text model is not installed on this server (scripts/fetch-model.sh fetches it)".to_string();
        return Ok((Vec::new(), step(TranscriptSource::None, &[], Some(note))));
    }
    let program = speech::locate(&config.speech_binary);
    let recogniser = Recogniser {
        program: &program,
        model: &config.speech_model,
        language: &config.speech_language,
    };
    let source = dir.join("source");
    let heard = speech::transcribe(&recogniser, &source, dir, probe.duration_s, limit, cancel);
    let cues = match heard.await {
        Ok(cues) => cues,
        Err(JobError::Missing { .. }) => {
            tracing::warn!(program = %config.speech_binary.display(), "speech-to-text program missing");
            let note = "no transcript: the speech-to-text program is not installed on this server (cargo build -p chatapi-whisper)".to_string();
            return Ok((Vec::new(), step(TranscriptSource::None, &[], Some(note))));
        }
        Err(e) => return Err(e),
    };
    let note = cues
        .is_empty()
        .then(|| "no speech was heard in the video".to_string());
    let s = step(TranscriptSource::SpeechToText, &cues, note);
    Ok((cues, s))
}

async fn read_screens(
    library: &Library,
    dir: &std::path::Path,
    frames: &mut [Keyframe],
    cancel: &CancellationToken,
) -> Result<CountStep, JobError> {
    let config = &library.config;
    if !config.ocr {
        return Ok(CountStep {
            count: 0,
            note: Some("on-screen text reading is turned off (videos.ocr)".into()),
        });
    }
    let mut with_text = 0;
    for frame in frames.iter_mut() {
        let image = keyframes::file(dir, frame.index);
        match ocr::read(&image, &config.ocr_language, config.step_timeout, cancel).await {
            Ok(text) => {
                with_text += usize::from(!text.is_empty());
                frame.ocr_text = text;
            }
            // One frame tesseract cannot read is one frame without text, not a failed video.
            Err(JobError::Program { detail, .. }) => {
                tracing::debug!(frame = frame.index, %detail, "tesseract could not read a keyframe");
            }
            Err(JobError::Missing { .. }) => {
                return Ok(CountStep {
                    count: 0,
                    note: Some(
                        "no on-screen text: tesseract is not installed on this server".into(),
                    ),
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(CountStep {
        count: with_text,
        note: None,
    })
}

/// Captions from the vision upstreams. When they fail, the video goes on without the rest of
/// its captions, and the note says why: a caption is an extra, not what makes a video usable.
async fn describe(
    library: &Library,
    dir: &std::path::Path,
    frames: &mut [Keyframe],
    cancel: &CancellationToken,
) -> Result<CountStep, JobError> {
    let Some(vision) = &library.vision else {
        return Ok(CountStep {
            count: 0,
            note: Some(
                "no captions: no vision upstream is configured (videos.vision_upstreams)".into(),
            ),
        });
    };
    let mut count = 0;
    for frame in frames.iter_mut() {
        let jpeg = tokio::fs::read(keyframes::file(dir, frame.index))
            .await
            .map_err(|e| JobError::Internal(format!("reading keyframe {}: {e}", frame.index)))?;
        match vision.caption(&jpeg, cancel).await {
            Ok(caption) => {
                frame.caption = caption;
                count += 1;
            }
            Err(JobError::Failed(why)) => {
                return Ok(CountStep {
                    count,
                    note: Some(format!(
                        "captions stopped at keyframe {}: {why}",
                        frame.index
                    )),
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(CountStep { count, note: None })
}

async fn clear_keyframes(dir: &std::path::Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry.file_name().to_string_lossy().starts_with("kf-") {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}
