//! Step 6: the timeline, the shape a prompt reads. One segment per scene (keyframe to the next),
//! long scenes cut at the cue nearest every `MAX_SEGMENT_S`, each cue in the segment where it
//! starts. A scene's on-screen text and caption go on its first segment only: repeated, they
//! would crowd a prompt with the same words.

use super::model::{Cue, Keyframe, Segment};

/// Longest stretch one `[MM:SS]` stamp covers.
pub const MAX_SEGMENT_S: f64 = 30.0;

/// Each segment with its size in tokens, for grounding chats without tokenizing on the request
/// path. CPU work: run it off the async runtime.
/// `None` as soon as `stop()` says so (the video was deleted, the server is stopping), checked
/// between segments: a long timeline takes seconds, and its thread must not outlive its job.
pub fn count_tokens(mut segments: Vec<Segment>, stop: impl Fn() -> bool) -> Option<Vec<Segment>> {
    for s in &mut segments {
        if stop() {
            return None;
        }
        let n = crate::context_budget::count_text(None, &s.text());
        s.tokens = Some(u32::try_from(n).unwrap_or(u32::MAX));
    }
    Some(segments)
}

pub fn build(duration_s: f64, keyframes: &[Keyframe], cues: &[Cue]) -> Vec<Segment> {
    let mut scenes: Vec<(f64, Option<&Keyframe>)> =
        keyframes.iter().map(|k| (k.time_s, Some(k))).collect();
    if scenes.first().is_none_or(|(t, _)| *t > 0.0) {
        scenes.insert(0, (0.0, None));
    }
    let mut segments = Vec::new();
    for (i, &(start, keyframe)) in scenes.iter().enumerate() {
        let end = scenes.get(i + 1).map_or(duration_s, |(t, _)| *t).max(start);
        let scene_cues: Vec<&Cue> = cues
            .iter()
            .filter(|c| {
                c.start_s >= start
                    && (c.start_s < end || (i + 1 == scenes.len() && c.start_s >= end))
            })
            .collect();
        let mut piece_start = start;
        let mut words: Vec<&Cue> = Vec::new();
        let mut first = true;
        let mut flush = |from: f64, to: f64, words: &mut Vec<&Cue>, first: &mut bool| {
            segments.push(Segment {
                start_s: from,
                end_s: to,
                transcript: words
                    .iter()
                    .map(|c| c.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                cues: words.iter().map(|c| (*c).clone()).collect(),
                on_screen_text: if *first {
                    keyframe.map(|k| k.ocr_text.clone()).unwrap_or_default()
                } else {
                    String::new()
                },
                caption: if *first {
                    keyframe.map(|k| k.caption.clone()).unwrap_or_default()
                } else {
                    String::new()
                },
                tokens: None,
                keyframe: keyframe.map(|k| k.index),
            });
            words.clear();
            *first = false;
        };
        for cue in scene_cues {
            if cue.start_s - piece_start >= MAX_SEGMENT_S && !words.is_empty() {
                flush(piece_start, cue.start_s, &mut words, &mut first);
                piece_start = cue.start_s;
            }
            words.push(cue);
        }
        flush(piece_start, end, &mut words, &mut first);
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kf(index: u32, time_s: f64, text: &str) -> Keyframe {
        Keyframe {
            index,
            time_s,
            ocr_text: text.into(),
            caption: String::new(),
        }
    }

    fn cue(start_s: f64, text: &str) -> Cue {
        Cue {
            start_s,
            end_s: start_s + 1.0,
            text: text.into(),
        }
    }

    #[test]
    fn one_segment_per_scene_with_its_cues() {
        let s = build(
            12.0,
            &[kf(0, 0.0, "A"), kf(1, 4.0, "B")],
            &[cue(1.0, "one"), cue(5.0, "two"), cue(6.0, "three")],
        );
        assert_eq!(s.len(), 2);
        assert_eq!(
            (
                s[0].start_s,
                s[0].end_s,
                s[0].transcript.as_str(),
                s[0].on_screen_text.as_str()
            ),
            (0.0, 4.0, "one", "A")
        );
        assert_eq!(
            (s[1].start_s, s[1].end_s, s[1].transcript.as_str()),
            (4.0, 12.0, "two three")
        );
    }

    #[test]
    fn long_scenes_are_cut_at_cues() {
        let cues: Vec<Cue> = (0..10).map(|i| cue(f64::from(i) * 10.0, "w")).collect();
        let s = build(100.0, &[kf(0, 0.0, "T")], &cues);
        assert_eq!(s.len(), 4);
        assert_eq!(s[1].start_s, 30.0);
        assert_eq!(s[1].on_screen_text, "");
        assert_eq!(s[1].keyframe, Some(0));
        assert!(s
            .iter()
            .all(|x| x.end_s - x.start_s <= MAX_SEGMENT_S + 10.0));
    }

    #[test]
    fn no_keyframes_still_covers_the_video() {
        let s = build(5.0, &[], &[cue(1.0, "hi")]);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].start_s, s[0].end_s, s[0].keyframe), (0.0, 5.0, None));
    }
}
