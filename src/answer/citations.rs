//! Citations that are real. A model asked about videos cites moments as `[MM:SS]` (`[H:MM:SS]`
//! past an hour), and a small model makes them up: a stamp past the video's end, one between the
//! segments it was shown. Every stamp in an answer is checked against the segments the answer
//! was grounded in: one inside a segment stands; one that is not is moved to the segment the
//! words before it come from, or dropped when no segment shares their words. A streamed answer is
//! checked as it streams: only the characters of a stamp in progress are held back (at most
//! `LONGEST` of them), everything else passes on at once.
//!
//! A segment can hold several sentences said at their own moments; each is a moment of its own
//! (`Moment`), so a stamp that stands inside the segment but at a sentence the cited words are
//! not from is moved to the one they are from (a small model cites a segment's first stamp for
//! everything said in it).
//!
//! The small embedded model reads the instruction to cite and does not (given an example of a
//! cited answer, it answers with the example): for it, an answer that cites nothing is given the
//! stamp of the segment its words come from, when at least `ATTRIBUTED_WORDS` of them match.

use std::collections::HashSet;

use crate::videos::excerpt::terms;
use crate::videos::model::{stamp, Segment};

/// `[HH:MM:SS]`: the longest stamp, so the most a check ever holds back.
const LONGEST: usize = 10;
/// A stamp this close past a segment's end still cites it (a model rounds a moment up).
const SLACK_S: f64 = 1.0;
/// The words before a stamp that say what it cites: the rest of the sentence, at most this many
/// characters back.
const CONTEXT_CHARS: usize = 300;
/// Words an uncited answer must share with a segment to be given its stamp.
const ATTRIBUTED_WORDS: usize = 2;

/// A segment, or one sentence said in it, that the answer may cite: its times and its words.
struct Moment {
    start_s: f64,
    end_s: f64,
    words: HashSet<String>,
}

pub struct Citations {
    moments: Vec<Moment>,
    /// A space held back: it goes with the stamp that may follow it, dropped or not.
    gap: bool,
    /// A stamp in progress: `[` and what followed it so far.
    held: String,
    /// What was passed on, its tail: the words a bad stamp is matched by.
    said: String,
    /// An answer that cites nothing is given the stamp its words come from (the small model's).
    attribute: bool,
    cited: bool,
}

impl Citations {
    /// The check for an answer grounded in `segments` (of every video it was given); with
    /// `attribute`, an answer that cites nothing is given its stamp.
    pub fn new<'a>(segments: impl IntoIterator<Item = &'a Segment>, attribute: bool) -> Self {
        let mut moments = Vec::new();
        for s in segments {
            moments.push(Moment::new(s.start_s, s.end_s, &s.text()));
            let cues = s.cues();
            // One sentence said well into its segment is a moment of its own too.
            if cues.len() > 1
                || cues
                    .first()
                    .is_some_and(|c| c.start_s >= s.start_s + SLACK_S)
            {
                let ends = cues.iter().skip(1).map(|c| c.start_s).chain([s.end_s]);
                for (cue, end_s) in cues.iter().zip(ends) {
                    moments.push(Moment::new(cue.start_s, end_s, &cue.text));
                }
            }
        }
        Self {
            moments,
            gap: false,
            held: String::new(),
            said: String::new(),
            attribute,
            cited: false,
        }
    }

    /// The checked text of the next piece of an answer: what can be passed on now.
    pub fn feed(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 1);
        for c in text.chars() {
            if self.held.is_empty() {
                match c {
                    '[' => self.held.push(c),
                    ' ' => {
                        self.open_gap(&mut out);
                        self.gap = true;
                    }
                    _ => {
                        self.open_gap(&mut out);
                        out.push(c);
                    }
                }
                continue;
            }
            self.held.push(c);
            match shape(&self.held) {
                Shape::Partial => {}
                Shape::Stamp(seconds) => {
                    self.cited = true;
                    let held = std::mem::take(&mut self.held);
                    let checked = self.checked(seconds, &held, &out);
                    if checked.is_empty() {
                        self.gap = false;
                    } else {
                        self.open_gap(&mut out);
                        out.push_str(&checked);
                    }
                }
                Shape::Not => {
                    // Not a stamp: passed on as it came; its last character may open one.
                    self.open_gap(&mut out);
                    let mut held = std::mem::take(&mut self.held);
                    match held.pop() {
                        Some('[') => {
                            out.push_str(&held);
                            self.held.push('[');
                        }
                        Some(' ') => {
                            out.push_str(&held);
                            self.gap = true;
                        }
                        Some(last) => {
                            out.push_str(&held);
                            out.push(last);
                        }
                        None => {}
                    }
                }
            }
        }
        self.remember(&out);
        out
    }

    /// What is still held at the answer's end (a space, a `[` that opened no stamp), as it
    /// came; and for an uncited answer that is to be attributed, its stamp.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        self.open_gap(&mut out);
        out.push_str(&std::mem::take(&mut self.held));
        if self.attribute && !std::mem::replace(&mut self.cited, true) {
            let said = self.said.clone() + &out;
            if let Some((shared, moment)) = self.best(&words(&said)) {
                if shared >= ATTRIBUTED_WORDS {
                    out.push_str(if said.ends_with(' ') { "" } else { " " });
                    out.push_str(&stamp(moment.start_s));
                }
            }
        }
        out
    }

    /// A whole answer, checked.
    pub fn whole(mut self, text: &str) -> String {
        let mut out = self.feed(text);
        out.push_str(&self.finish());
        out
    }

    fn open_gap(&mut self, out: &mut String) {
        if std::mem::take(&mut self.gap) {
            out.push(' ');
        }
    }

    /// The stamp as it stands, moved to the moment its words come from, or dropped (empty).
    fn checked(&self, seconds: f64, held: &str, before: &str) -> String {
        if self.moments.is_empty() {
            return held.to_string();
        }
        // The cited words, split once for every moment they are matched against.
        let context = words(&self.context(before));
        let best = self.best(&context);
        // The narrowest moment the stamp falls in: a sentence rather than its whole segment.
        let cited = self
            .moments
            .iter()
            .filter(|m| m.holds(seconds))
            .min_by(|a, b| a.length().total_cmp(&b.length()));
        match (cited, best) {
            // The words are a sentence's the stamp is not at: fewer of them at the stamp, or
            // the stamp between sentences of the segment they were said in.
            (Some(cited), Some((shared, moment)))
                if shared >= ATTRIBUTED_WORDS
                    && (cited.shared(&context) < shared
                        || (moment.length() < cited.length() && !moment.holds(seconds))) =>
            {
                stamp(moment.start_s)
            }
            (Some(_), _) => held.to_string(),
            (None, Some((_, moment))) => stamp(moment.start_s),
            (None, None) => String::new(),
        }
    }

    /// The moment sharing most words with `text`, and how many: of equals, the narrowest (the
    /// sentence over its segment), then the earliest.
    fn best(&self, text: &HashSet<String>) -> Option<(usize, &Moment)> {
        self.moments
            .iter()
            .map(|m| (m.shared(text), m))
            .filter(|(shared, _)| *shared > 0)
            .max_by(|a, b| {
                a.0.cmp(&b.0)
                    .then(b.1.length().total_cmp(&a.1.length()))
                    .then(b.1.start_s.total_cmp(&a.1.start_s))
            })
    }

    /// The sentence a stamp ends: the text since the last sentence end or stamp before it.
    fn context(&self, before: &str) -> String {
        let mut text = self.said.clone();
        text.push_str(before);
        let cut = text
            .char_indices()
            .rev()
            .skip_while(|(_, c)| matches!(c, '.' | '!' | '?' | ' ' | '\n'))
            .find(|(_, c)| matches!(c, '.' | '!' | '?' | ']' | '\n'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        text[cut..].to_string()
    }

    fn remember(&mut self, out: &str) {
        self.said.push_str(out);
        if self.said.len() > CONTEXT_CHARS * 2 {
            let mut cut = self.said.len() - CONTEXT_CHARS;
            while !self.said.is_char_boundary(cut) {
                cut += 1;
            }
            self.said.drain(..cut);
        }
    }
}

impl Moment {
    fn new(start_s: f64, end_s: f64, text: &str) -> Self {
        Self {
            start_s,
            end_s,
            words: words(text),
        }
    }

    /// Whether a stamp at `seconds` cites it (a model rounds a moment down, or up a little).
    fn holds(&self, seconds: f64) -> bool {
        seconds >= self.start_s.floor() && seconds < self.end_s + SLACK_S
    }

    fn length(&self) -> f64 {
        self.end_s - self.start_s
    }

    /// How many of `text`'s words it holds.
    fn shared(&self, text: &HashSet<String>) -> usize {
        text.intersection(&self.words).count()
    }
}

/// The words that say what is cited (short ones say nothing).
fn words(text: &str) -> HashSet<String> {
    terms(text).filter(|w| w.len() > 2).collect()
}

/// The first whole stamp in `text`: where it stands (bytes) and its moment in seconds.
pub fn first_stamp(text: &str) -> Option<(std::ops::Range<usize>, f64)> {
    text.match_indices('[').find_map(|(at, _)| {
        let end = text[at..].find(']').map(|e| at + e + 1)?;
        match shape(&text[at..end]) {
            Shape::Stamp(seconds) => Some((at..end, seconds)),
            _ => None,
        }
    })
}

/// Every whole stamp in `text`, in order, in seconds.
pub fn stamps(text: &str) -> Vec<f64> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some((at, seconds)) = first_stamp(rest) {
        found.push(seconds);
        rest = &rest[at.end..];
    }
    found
}

enum Shape {
    /// Could still become a stamp.
    Partial,
    /// A whole stamp, at this many seconds.
    Stamp(f64),
    Not,
}

/// What `held` (starting with `[`) is: `[M:SS]`, `[MM:SS]`, `[H:MM:SS]` or `[HH:MM:SS]`.
fn shape(held: &str) -> Shape {
    let inner = &held[1..];
    if held.len() > LONGEST {
        return Shape::Not;
    }
    let Some(body) = inner.strip_suffix(']') else {
        // Digits and colons so far, no more than two colons, each part at most two digits.
        let parts: Vec<&str> = inner.split(':').collect();
        let fits = parts.len() <= 3
            && parts
                .iter()
                .all(|p| p.len() <= 2 && p.chars().all(|c| c.is_ascii_digit()))
            && parts[..parts.len() - 1].iter().all(|p| !p.is_empty());
        return if fits { Shape::Partial } else { Shape::Not };
    };
    let parts: Vec<&str> = body.split(':').collect();
    let numbers: Option<Vec<u64>> = parts
        .iter()
        .map(|p| {
            (!p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect();
    match numbers.as_deref() {
        Some([m, s]) if *s < 60 && parts[1].len() == 2 => Shape::Stamp((m * 60 + s) as f64),
        Some([h, m, s]) if *m < 60 && *s < 60 && parts[1].len() == 2 && parts[2].len() == 2 => {
            Shape::Stamp((h * 3600 + m * 60 + s) as f64)
        }
        _ => Shape::Not,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start_s: f64, end_s: f64, said: &str) -> Segment {
        Segment {
            start_s,
            end_s,
            transcript: said.to_string(),
            on_screen_text: String::new(),
            caption: String::new(),
            keyframe: None,
            tokens: None,
            cues: Vec::new(),
        }
    }

    fn timeline() -> Vec<Segment> {
        vec![
            segment(0.0, 20.0, "Welcome to the garden tour."),
            segment(20.0, 40.0, "The bicycle is parked beside the red barn."),
            segment(40.0, 48.0, "Finally we water the flowers before sunset."),
        ]
    }

    #[test]
    fn every_whole_stamp_is_listed_in_order() {
        assert_eq!(
            stamps("At [00:25] and [1:02:03], not [7] nor [ab:cd], then [01:05]."),
            vec![25.0, 3723.0, 65.0]
        );
        assert!(stamps("no stamps [").is_empty());
    }

    #[test]
    fn real_stamps_stand_and_made_up_ones_move_or_go() {
        let check = Citations::new(&timeline(), false);
        let answer = "The bicycle is by the red barn [00:25]. The flowers get water at sunset \
                      [07:40]. Nobody mentions rockets [09:59].";
        assert_eq!(
            check.whole(answer),
            "The bicycle is by the red barn [00:25]. The flowers get water at sunset [00:40]. \
             Nobody mentions rockets."
        );
    }

    #[test]
    fn a_segment_stamp_moves_to_the_sentence_its_words_come_from() {
        let cue = |start_s: f64, end_s: f64, text: &str| crate::videos::model::Cue {
            start_s,
            end_s,
            text: text.to_string(),
        };
        let mut said = segment(
            0.0,
            20.0,
            "Welcome to the garden tour. Today we plant tomatoes in the sunny corner. \
             The bicycle is parked beside the red barn.",
        );
        said.cues = vec![
            cue(1.0, 3.0, "Welcome to the garden tour."),
            cue(6.0, 9.0, "Today we plant tomatoes in the sunny corner."),
            cue(15.0, 18.0, "The bicycle is parked beside the red barn."),
        ];
        let timeline = [said];
        assert_eq!(
            Citations::new(&timeline, false)
                .whole("The bike is parked beside the red barn [00:00]."),
            "The bike is parked beside the red barn [00:15]."
        );
        // Said at 0:40 in a segment from 0:20: a stamp at 0:30 is between its sentences.
        let mut late = segment(20.0, 48.0, "Finally we water the flowers before sunset.");
        late.cues = vec![cue(
            40.0,
            43.0,
            "Finally we water the flowers before sunset.",
        )];
        assert_eq!(
            Citations::new(&[late], false).whole("The flowers are watered at sunset. [00:30]"),
            "The flowers are watered at sunset. [00:40]"
        );
        // A stamp at the right sentence stands; one whose words are nowhere stands too.
        assert_eq!(
            Citations::new(&timeline, false).whole("They plant tomatoes [00:06]. Hello [00:01]."),
            "They plant tomatoes [00:06]. Hello [00:01]."
        );
        // An uncited answer is given its sentence's moment, not the segment's.
        assert_eq!(
            Citations::new(&timeline, true).whole("They plant tomatoes in the sunny corner."),
            "They plant tomatoes in the sunny corner. [00:06]"
        );
    }

    #[test]
    fn a_stream_holds_back_only_a_stamp_in_progress() {
        let mut check = Citations::new(&timeline(), false);
        let pieces = [
            "The barn is red [0",
            "0:2",
            "7] and",
            " the list [a, b] [",
            "1:0",
            "0:00].",
        ];
        let passed: Vec<String> = pieces.iter().map(|p| check.feed(p)).collect();
        let end = check.finish();
        // The space before a `[` waits with it: it goes if the stamp goes.
        assert_eq!(passed[0], "The barn is red");
        assert_eq!(passed[1], "");
        assert_eq!(passed[2], " [00:27] and");
        // An hour stamp past every segment, after words no segment has: dropped, space and all.
        assert_eq!(
            passed.concat() + &end,
            "The barn is red [00:27] and the list [a, b]."
        );
    }

    #[test]
    fn the_small_models_uncited_answer_is_given_the_stamp_its_words_come_from() {
        let small = |text: &str| Citations::new(&timeline(), true).whole(text);
        assert_eq!(
            small("They water the flowers before sunset."),
            "They water the flowers before sunset. [00:40]"
        );
        // Cited already, or sharing too few words: left as it is.
        assert_eq!(
            small("The barn is red [00:27]."),
            "The barn is red [00:27]."
        );
        assert_eq!(small("I do not know."), "I do not know.");
        assert_eq!(
            Citations::new(&timeline(), false).whole("They water the flowers."),
            "They water the flowers."
        );
    }

    #[test]
    fn what_only_looks_like_a_stamp_passes_as_it_came() {
        for text in [
            "[1:2:3]",
            "[123:45]",
            "[12:60] and [x]",
            "a [[00:10]] b",
            "[",
            "x [0",
            "two  spaces [ and a bracket",
        ] {
            assert_eq!(Citations::new(&timeline(), false).whole(text), text);
        }
    }
}
