//! Where the picture cuts: a score per frame pair over small frames (decoded once, 5 a second,
//! `WIDTH`×`HEIGHT`), three ways a person sees a cut:
//! - the content changes: hue, saturation and brightness deltas averaged (as PySceneDetect's
//!   ContentDetector), so a red → green cut of equal brightness scores as a cut (ffmpeg's
//!   `scene` score, brightness alone, gave such a cut 0.19 under its 0.3 threshold);
//! - a part of the picture changes outright: the fraction of pixels whose brightness jumps, so a
//!   slide whose words alone change on the same background is a cut;
//! - the picture comes back from black: the end of a fade.
//!
//! Each score must also stand out against the frames just before it (`RATIO` times their
//! average): film grain, camera noise and a talking head change every frame a little, and their
//! average rises with them, so they make no cuts.

use std::collections::VecDeque;

/// The frames scored: small enough to cost little, large enough to see a line of text change.
pub const WIDTH: usize = 128;
pub const HEIGHT: usize = 72;
pub const FRAME_BYTES: usize = WIDTH * HEIGHT * 3;

/// A brightness jump this large (0–255) changes a pixel outright.
const PIXEL_JUMP: f32 = 40.0;
/// This fraction of pixels changing outright is a cut (a line of text on a slide is ~2 %).
const CHANGED_FRACTION: f32 = 0.008;
/// A score must be this many times the average of the `WINDOW` frames before it.
const RATIO: f32 = 3.0;
const WINDOW: usize = 5;
/// Mean brightness (0–255) under which a frame is black (the middle of a fade).
const BLACK: f32 = 18.0;

/// One frame, as hue (0–180), saturation and value (0–255) per pixel. Two are kept and refilled
/// frame after frame: a 2-hour video is 36,000 frames, none of them allocated anew.
#[derive(Default)]
struct Hsv {
    h: Vec<u8>,
    s: Vec<u8>,
    v: Vec<u8>,
    mean_v: f32,
}

impl Hsv {
    fn fill(&mut self, rgb: &[u8]) {
        let n = rgb.len() / 3;
        let Self { h, s, v, mean_v } = self;
        h.clear();
        s.clear();
        v.clear();
        let mut total = 0u64;
        for px in rgb.chunks_exact(3) {
            let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            let max = r.max(g).max(b);
            let min = r.min(g).min(b);
            let delta = max - min;
            let hue = if delta == 0 {
                0
            } else if max == r {
                (30 * (g - b) / delta).rem_euclid(180)
            } else if max == g {
                60 + 30 * (b - r) / delta
            } else {
                120 + 30 * (r - g) / delta
            };
            h.push(hue as u8);
            s.push(if max == 0 {
                0
            } else {
                (255 * delta / max) as u8
            });
            v.push(max as u8);
            total += max as u64;
        }
        *mean_v = total as f32 / n.max(1) as f32;
    }

    /// The content score (0–255) and the fraction of pixels that changed outright, from `prev`.
    /// A pixel changed outright when its brightness moved far from how the whole frame's did: a
    /// fade or an exposure change moves every pixel alike, and changes no part.
    fn change(&self, prev: &Hsv) -> (f32, f32) {
        let n = self.v.len().max(1) as f32;
        let shift = self.mean_v - prev.mean_v;
        let (mut dh, mut ds, mut dv, mut jumped) = (0u64, 0u64, 0u64, 0u32);
        for i in 0..self.v.len() {
            let hue = (i32::from(self.h[i]) - i32::from(prev.h[i])).abs();
            // Hue is a circle; a grey pixel's hue means nothing.
            let hue = hue.min(180 - hue) * 255 / 90;
            let saturated = self.s[i].min(prev.s[i]) > 40;
            dh += if saturated { hue as u64 } else { 0 };
            ds += (i32::from(self.s[i]) - i32::from(prev.s[i])).unsigned_abs() as u64;
            let value = i32::from(self.v[i]) - i32::from(prev.v[i]);
            dv += value.unsigned_abs() as u64;
            jumped += u32::from((value as f32 - shift).abs() > PIXEL_JUMP);
        }
        let content = (dh + ds + dv) as f32 / 3.0 / n;
        (content, jumped as f32 / n)
    }
}

/// A cut found: when the new scene starts, and when its picture is best taken (after a fade,
/// once it is bright again).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cut {
    pub at_s: f64,
    pub picture_s: f64,
}

/// One frame pair scored: the later frame's time and how it changed from the one before.
struct Pair {
    at_s: f64,
    content: f32,
    jumped: f32,
    dark: bool,
    back_from_black: bool,
}

/// Scores frames as they are decoded and keeps the cuts.
pub struct Detector {
    /// A content score (0–255) over this is a cut (standing out as `RATIO` says).
    threshold: f32,
    /// Cuts closer than this to the last one are not kept (the keyframe ceiling).
    min_gap_s: f64,
    /// The frame before, once there is one; `this` is filled with the frame being scored.
    prev: Option<Hsv>,
    this: Hsv,
    /// The last `WINDOW` pairs' scores, once the first pairs are judged.
    scores: VecDeque<(f32, f32)>,
    /// The first pairs of a stream, held until the frames after them are seen: they have no
    /// frames before them to stand out against, so they stand out against those after (a stream
    /// may start a moment before a cut: `scan` decodes stretches of a video, not only all of it).
    first: Option<Vec<Pair>>,
    /// The frame time the picture went black, while it is.
    black_since: Option<f64>,
    cuts: Vec<Cut>,
}

/// The pairs judged against the pairs after them, at a stream's start.
const LEAD: usize = 2;

impl Detector {
    /// `threshold` 0–1 (`videos.scene_threshold`), as a share of the content score's range.
    pub fn new(threshold: f64, min_gap_s: f64) -> Self {
        Self {
            threshold: (threshold * 255.0) as f32,
            min_gap_s,
            prev: None,
            this: Hsv::default(),
            scores: VecDeque::with_capacity(WINDOW + 1),
            first: Some(Vec::with_capacity(LEAD + WINDOW)),
            black_since: None,
            cuts: Vec::new(),
        }
    }

    /// The next frame (`FRAME_BYTES` of RGB), shown at `time_s`.
    pub fn frame(&mut self, time_s: f64, rgb: &[u8]) {
        self.this.fill(rgb);
        let hsv = &self.this;
        let Some(prev) = self.prev.as_mut() else {
            self.black_since = (hsv.mean_v < BLACK).then_some(time_s);
            self.prev = Some(std::mem::take(&mut self.this));
            return;
        };
        let (content, jumped) = hsv.change(prev);
        let dark = hsv.mean_v < BLACK;
        // The frame just scored is the one before the next; the old one's buffers are refilled.
        std::mem::swap(prev, &mut self.this);
        let pair = Pair {
            at_s: time_s,
            content,
            jumped,
            dark,
            back_from_black: !dark && self.black_since.is_some(),
        };
        self.black_since = match (dark, self.black_since) {
            (true, None) => Some(time_s),
            (true, since) => since,
            (false, _) => None,
        };
        match self.first.as_mut() {
            Some(first) => {
                first.push(pair);
                if first.len() == LEAD + WINDOW {
                    self.judge_first();
                }
            }
            None => {
                let avg = average(self.scores.iter().copied());
                self.judge(&pair, avg);
                if self.scores.len() == WINDOW {
                    self.scores.pop_front();
                }
                self.scores.push_back((pair.content, pair.jumped));
            }
        }
    }

    /// The held first pairs: the first `LEAD` against the pairs after them, the rest against the
    /// pairs before them, as every later pair is.
    fn judge_first(&mut self) {
        let Some(first) = self.first.take() else {
            return;
        };
        let scores: Vec<(f32, f32)> = first.iter().map(|p| (p.content, p.jumped)).collect();
        for (i, pair) in first.iter().enumerate() {
            let around = if i < LEAD {
                &scores[LEAD.min(scores.len())..]
            } else {
                &scores[i.saturating_sub(WINDOW)..i]
            };
            self.judge(pair, average(around.iter().copied()));
        }
        let tail = scores.len().saturating_sub(WINDOW);
        self.scores.extend(scores[tail..].iter().copied());
    }

    fn judge(&mut self, pair: &Pair, (avg_content, avg_jumped): (f32, f32)) {
        let content_cut = pair.content >= self.threshold && pair.content >= RATIO * avg_content;
        let part_cut = pair.jumped >= CHANGED_FRACTION && pair.jumped >= RATIO * avg_jumped + 0.002;
        if pair.back_from_black {
            // The picture brightens over the fade's length: it is taken a little later.
            self.keep(Cut {
                at_s: pair.at_s,
                picture_s: pair.at_s + 0.8,
            });
        } else if !pair.dark && (content_cut || part_cut) {
            self.keep(Cut {
                at_s: pair.at_s,
                picture_s: pair.at_s,
            });
        }
    }

    fn keep(&mut self, cut: Cut) {
        let last = self.cuts.last().map_or(f64::NEG_INFINITY, |c| c.at_s);
        if cut.at_s - last >= self.min_gap_s {
            self.cuts.push(cut);
        }
    }

    /// The cuts, in order (where the stream starts is not one).
    pub fn cuts(mut self) -> Vec<Cut> {
        self.judge_first();
        self.cuts
    }
}

/// Whether two frames differ enough that a cut may lie between them (`threshold` as for
/// `Detector`): the bar is half a cut's, since a change missed here is a cut never looked for.
pub fn differ(a: &[u8], b: &[u8], threshold: f64) -> bool {
    let (mut x, mut y) = (Hsv::default(), Hsv::default());
    x.fill(a);
    y.fill(b);
    let (content, jumped) = y.change(&x);
    content >= (threshold * 255.0 / 2.0) as f32 || jumped >= CHANGED_FRACTION / 2.0
}

fn average(scores: impl ExactSizeIterator<Item = (f32, f32)>) -> (f32, f32) {
    let n = scores.len().max(1) as f32;
    scores.fold((0.0, 0.0), |(c, j), (dc, dj)| (c + dc / n, j + dj / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of one colour, with a bar of `bar` colour across `rows` of it.
    fn frame(rgb: [u8; 3], bar: Option<([u8; 3], std::ops::Range<usize>)>) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_BYTES);
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let c = match &bar {
                    Some((c, rows)) if rows.contains(&y) && (20..100).contains(&x) => *c,
                    _ => rgb,
                };
                out.extend_from_slice(&c);
            }
        }
        out
    }

    /// Grain: every pixel moved a little, differently each frame.
    fn grainy(mut f: Vec<u8>, seed: u32) -> Vec<u8> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        for b in &mut f {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 28) as i32 - 8;
            *b = (i32::from(*b) + noise).clamp(0, 255) as u8;
        }
        f
    }

    fn cuts(frames: &[Vec<u8>]) -> Vec<f64> {
        let mut d = Detector::new(0.08, 1.0);
        for (i, f) in frames.iter().enumerate() {
            d.frame(i as f64 * 0.2, f);
        }
        d.cuts().iter().map(|c| c.at_s).collect()
    }

    #[test]
    fn a_colour_cut_of_equal_brightness_is_a_cut() {
        let red = frame([192, 48, 48], None);
        let green = frame([48, 192, 48], None);
        let frames: Vec<Vec<u8>> = (0..20)
            .map(|i| grainy(if i < 10 { red.clone() } else { green.clone() }, i))
            .collect();
        assert_eq!(cuts(&frames), [2.0]);
    }

    #[test]
    fn new_words_on_the_same_background_are_a_cut() {
        let white = [240, 240, 240];
        let a = frame([40, 120, 40], Some((white, 30..34)));
        let b = frame([40, 120, 40], Some((white, 40..44)));
        let frames: Vec<Vec<u8>> = (0..20)
            .map(|i| grainy(if i < 10 { a.clone() } else { b.clone() }, i))
            .collect();
        assert_eq!(cuts(&frames), [2.0]);
    }

    #[test]
    fn a_fade_through_black_is_one_cut_where_the_picture_returns() {
        let blue = frame([40, 60, 200], None);
        let mut frames = Vec::new();
        for i in 0..30u32 {
            let level = match i {
                0..=9 => 1.0,
                10..=14 => 1.0 - f32::from((i - 9) as u8) / 5.0,
                15..=16 => 0.0,
                17..=21 => f32::from((i - 16) as u8) / 5.0,
                _ => 1.0,
            };
            let f: Vec<u8> = blue.iter().map(|&b| (f32::from(b) * level) as u8).collect();
            frames.push(grainy(f, i));
        }
        let found = cuts(&frames);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!((found[0] - 3.4).abs() < 0.01, "{found:?}");
    }

    #[test]
    fn a_cut_just_after_a_stream_starts_is_a_cut() {
        // `scan` decodes from a keyframe, and the cut may come on the next frame.
        let red = frame([192, 48, 48], None);
        let green = frame([48, 192, 48], None);
        let frames: Vec<Vec<u8>> = (0..12)
            .map(|i| grainy(if i < 1 { red.clone() } else { green.clone() }, i))
            .collect();
        assert_eq!(cuts(&frames), [0.2]);
        // And in a stream too short to judge it by the frames after.
        assert_eq!(cuts(&frames[..3]), [0.2]);
    }

    #[test]
    fn movement_from_a_stream_start_is_no_cut() {
        // A bar sweeping across every frame changes a part of each: no part stands out.
        let frames: Vec<Vec<u8>> = (0..20u32)
            .map(|i| {
                let row = (i as usize * 6) % 64;
                grainy(
                    frame([90, 90, 90], Some(([230, 230, 230], row..row + 6))),
                    i,
                )
            })
            .collect();
        assert!(cuts(&frames).is_empty(), "{:?}", cuts(&frames));
    }

    #[test]
    fn keyframes_that_differ_are_told_apart_from_grain() {
        let red = frame([192, 48, 48], None);
        let green = frame([48, 192, 48], None);
        assert!(differ(&grainy(red.clone(), 1), &grainy(green, 2), 0.08));
        assert!(!differ(&grainy(red.clone(), 1), &grainy(red, 2), 0.08));
    }

    #[test]
    fn grain_and_slow_movement_are_no_cut() {
        let frames: Vec<Vec<u8>> = (0..40u32)
            .map(|i| {
                let row = i as usize % 60;
                grainy(
                    frame(
                        [100 + i as u8, 90, 80],
                        Some(([200, 180, 160], row..row + 8)),
                    ),
                    i,
                )
            })
            .collect();
        assert!(cuts(&frames).is_empty(), "{:?}", cuts(&frames));
    }
}
