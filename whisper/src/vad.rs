//! Where the speech is: an energy voice-activity pass over the 16 kHz samples, so whisper hears
//! only speech, each stretch at its known offset. Whisper alone stamps a sentence after a long
//! silence seconds early (its timestamps drift across quiet stretches) and hears words in
//! silence ("Thank you."); given only the speech, and told where each stretch starts, neither
//! happens, and quiet stretches cost nothing.
//!
//! A 30 ms frame is speech when its energy stands well above the recording's own noise floor (its
//! quietest tenth), or not far under its loud frames when nothing in it is quiet, and above an
//! absolute floor; runs of speech closer than `MIN_SILENCE` are one
//! stretch; a stretch with less than `MIN_SPEECH` of speech is a click, not a word; each keeps
//! `PAD` of its surroundings, so no word's edge is cut.

use std::ops::Range;

pub const RATE: usize = 16_000;
const FRAME: usize = RATE * 30 / 1000;
/// Above the noise floor by this much (dB) is speech.
const OVER_FLOOR_DB: f32 = 15.0;
/// Or under the loud frames (the loudest tenth) by no more than this.
const UNDER_LOUD_DB: f32 = 20.0;
/// Never speech below this (dBFS): digital silence and faint hiss.
const ABSOLUTE_FLOOR_DB: f32 = -50.0;
/// A pause shorter than this is inside a stretch (between words); a longer one, a sentence
/// break, ends it. Measured on the benchmark talk's speech (517 s of espeak-ng), word error rate:
/// 0.3 s 2.9 % (stretches end at sentences), 0.5 s 4.5 % (they run on and are cut mid-sentence),
/// whisper alone 4.2 %.
const MIN_SILENCE: usize = RATE * 3 / 10;
const MIN_SPEECH: usize = RATE / 4;
const PAD: usize = RATE / 5;
/// The longest stretch whisper is given at once: its window is 30 s.
pub const MAX_STRETCH: usize = 28 * RATE;

/// A stretch of speech: the samples whisper is given (with `PAD` around the voice), and where
/// the voice itself begins in them.
#[derive(Debug, Clone, PartialEq)]
pub struct Stretch {
    pub samples: Range<usize>,
    pub voice: usize,
}

/// The stretches of `samples` that hold speech, in order, none longer than `MAX_STRETCH`.
pub fn speech(samples: &[f32]) -> Vec<Stretch> {
    let energies: Vec<f32> = samples.chunks(FRAME).map(db).collect();
    if energies.is_empty() {
        return Vec::new();
    }
    let mut sorted = energies.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[sorted.len() / 10];
    // A recording with no quiet tenth (speech or music throughout) has no floor to stand above:
    // then what is well under its loud frames is the pause.
    let loud = sorted[sorted.len() * 9 / 10];
    let threshold = (floor + OVER_FLOOR_DB)
        .min(loud - UNDER_LOUD_DB)
        .max(ABSOLUTE_FLOOR_DB);

    // Runs of speech frames, joined across short pauses.
    let mut runs: Vec<(Range<usize>, usize)> = Vec::new();
    for (i, &e) in energies.iter().enumerate() {
        if e < threshold {
            continue;
        }
        let (start, end) = (i * FRAME, ((i + 1) * FRAME).min(samples.len()));
        match runs.last_mut() {
            Some((run, voiced)) if start - run.end < MIN_SILENCE => {
                run.end = end;
                *voiced += end - start;
            }
            _ => runs.push((start..end, end - start)),
        }
    }
    let mut stretches: Vec<Stretch> = Vec::new();
    for (run, voiced) in runs {
        if voiced < MIN_SPEECH {
            continue;
        }
        let before = stretches.last().map_or(0, |s| s.samples.end);
        let start = run.start.saturating_sub(PAD).max(before);
        let end = (run.end + PAD).min(samples.len());
        split(samples, start..end, run.start, &mut stretches);
    }
    stretches
}

/// `range` into `out`, cut where it is quietest near `MAX_STRETCH` while longer than that.
fn split(samples: &[f32], mut range: Range<usize>, voice: usize, out: &mut Vec<Stretch>) {
    let mut voice = voice;
    while range.len() > MAX_STRETCH {
        // The quietest frame of the last 8 s before the limit: most likely between words.
        let from = range.start + MAX_STRETCH - 8 * RATE;
        let cut = (from..range.start + MAX_STRETCH - FRAME)
            .step_by(FRAME)
            .map(|at| (db(&samples[at..at + FRAME]), at))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(range.start + MAX_STRETCH, |(_, at)| at + FRAME / 2);
        out.push(Stretch {
            samples: range.start..cut,
            voice,
        });
        range.start = cut;
        voice = cut;
    }
    out.push(Stretch {
        samples: range,
        voice,
    });
}

/// Silence put between two stretches in one chunk: whisper hears a pause, and starts a segment.
const GAP: usize = RATE / 2;

/// Stretches given to whisper at once: as many as fit its window, with `GAP` between them, so
/// it hears sentences with the words around them (alone, a short sentence is heard worse) and
/// runs once per window of speech, not per sentence.
pub struct Chunk<'a> {
    stretches: &'a [Stretch],
}

pub fn chunks(stretches: &[Stretch]) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let (mut from, mut length) = (0, 0);
    for (i, s) in stretches.iter().enumerate() {
        let more = s.samples.len() + if i > from { GAP } else { 0 };
        if i > from && length + more > MAX_STRETCH {
            out.push(Chunk {
                stretches: &stretches[from..i],
            });
            (from, length) = (i, s.samples.len());
        } else {
            length += more;
        }
    }
    if from < stretches.len() {
        out.push(Chunk {
            stretches: &stretches[from..],
        });
    }
    out
}

impl Chunk<'_> {
    /// Each stretch with where it starts in the chunk's audio: one after another, `GAP` apart.
    fn laid_out(&self) -> impl Iterator<Item = (usize, &Stretch)> + '_ {
        self.stretches.iter().scan(0, |pos, s| {
            let at = *pos;
            *pos += s.samples.len() + GAP;
            Some((at, s))
        })
    }

    /// The chunk's audio: its stretches with `GAP` between them, at least 1.1 s (whisper
    /// refuses less than a second).
    pub fn audio(&self, samples: &[f32]) -> Vec<f32> {
        let mut audio = Vec::new();
        for (at, s) in self.laid_out() {
            audio.resize(at, 0.0);
            audio.extend_from_slice(&samples[s.samples.clone()]);
        }
        audio.resize(audio.len().max(RATE + RATE / 10), 0.0);
        audio
    }

    /// Whisper's segments (centiseconds into the chunk's audio) moved to where they were said
    /// (centiseconds into the recording). A segment belongs to the stretch its middle falls in
    /// (one in a gap, to the next); the first of a stretch starts where its voice starts, the
    /// others where whisper says within it. Whisper makes its segments follow on from each other,
    /// so its starts carry the pause before them; the voice's start is measured.
    pub fn place(&self, heard: Vec<(i64, i64, String)>) -> Vec<(i64, i64, String)> {
        let cs = |n: usize| (n / (RATE / 100)) as i64;
        // Each stretch: where it starts and ends in the chunk.
        let at: Vec<(i64, i64, &Stretch)> = self
            .laid_out()
            .map(|(pos, s)| (cs(pos), cs(pos + s.samples.len()), s))
            .collect();
        let mut started = vec![false; at.len()];
        let mut placed: Vec<(i64, i64, String)> = Vec::new();
        for (start, end, text) in heard {
            let middle = (start + end) / 2;
            let i = at
                .iter()
                .position(|(_, until, _)| middle < *until)
                .unwrap_or(at.len() - 1);
            let (from, _, s) = at[i];
            let (voice, stop) = (cs(s.voice), cs(s.samples.end));
            let mapped = |t: i64| cs(s.samples.start) + (t - from);
            let begin = if started[i] {
                mapped(start).clamp(voice, stop)
            } else {
                voice
            };
            started[i] = true;
            let begin = begin.max(placed.last().map_or(0, |p| p.0));
            placed.push((begin, mapped(end).clamp(begin, stop), text));
        }
        placed
    }
}

/// A frame's energy in dB relative to full scale.
fn db(frame: &[f32]) -> f32 {
    let power = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    10.0 * (power + 1e-12).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tone (a stand-in for a voice) at these seconds, silence elsewhere, with faint noise.
    fn clip(seconds: usize, voiced: &[(f32, f32)]) -> Vec<f32> {
        let mut state = 1u32;
        (0..seconds * RATE)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let hiss = (state >> 8) as f32 / (1 << 24) as f32 * 2e-4 - 1e-4;
                let t = i as f32 / RATE as f32;
                let on = voiced.iter().any(|&(a, b)| t >= a && t < b);
                hiss + if on {
                    0.3 * (t * 220.0 * std::f32::consts::TAU).sin()
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn finds_each_stretch_of_speech_at_its_time() {
        let samples = clip(50, &[(1.0, 3.0), (6.0, 9.0), (9.2, 10.0), (40.0, 43.0)]);
        let secs = |n: usize| n as f32 / RATE as f32;
        let found: Vec<(f32, f32, f32)> = speech(&samples)
            .iter()
            .map(|s| (secs(s.samples.start), secs(s.voice), secs(s.samples.end)))
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        for ((start, voice, end), (a, b)) in
            found.iter().zip([(1.0, 3.0), (6.0, 10.0), (40.0, 43.0)])
        {
            assert!((start - (a - 0.2)).abs() < 0.05, "{found:?}");
            assert!((voice - a).abs() < 0.05, "{found:?}");
            assert!((end - (b + 0.2)).abs() < 0.05, "{found:?}");
        }
    }

    #[test]
    fn silence_and_clicks_are_not_speech() {
        assert!(speech(&clip(10, &[])).is_empty());
        assert!(speech(&clip(10, &[(5.0, 5.05)])).is_empty());
        assert!(speech(&[]).is_empty());
    }

    #[test]
    fn a_long_stretch_is_cut_to_whispers_window() {
        let samples = clip(70, &[(0.0, 70.0)]);
        let found = speech(&samples);
        assert!(found.len() >= 3, "{found:?}");
        assert!(found.iter().all(|s| s.samples.len() <= MAX_STRETCH));
        assert!(found
            .windows(2)
            .all(|w| w[0].samples.end == w[1].samples.start));
    }
}
