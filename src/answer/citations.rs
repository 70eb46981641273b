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
//! cited answer, it answers with the example): for it (`Small`), an answer that cites nothing is
//! given the stamp of the moment its words come from, words of the question aside. And it makes
//! facts up ("a 2018 Toyota Corolla" for a bicycle said at 0:15): its answer is held whole, and
//! one not grounded in the timeline — tied to no moment by a real stamp or by a word the question
//! did not bring, or made mostly of words the timeline does not have — is replaced with the
//! moment that best answers the question, quoted (`evidence`).

use std::collections::HashSet;

use crate::videos::excerpt::{shortened, terms};
use crate::videos::model::{stamp, Segment};

/// `[HH:MM:SS]`: the longest stamp, so the most a check ever holds back.
const LONGEST: usize = 10;
/// A stamp this close past a segment's end still cites it (a model rounds a moment up).
const SLACK_S: f64 = 1.0;
/// The words before a stamp that say what it cites: the rest of the sentence, at most this many
/// characters back.
const CONTEXT_CHARS: usize = 300;
/// Words an uncited answer must share with a moment to be given its stamp, when the question
/// is not known (a digest's instruction); when it is, one word the question did not bring does.
const ATTRIBUTED_WORDS: usize = 2;
/// A quoted sentence is cut to this many words.
const QUOTED_WORDS: usize = 40;
/// Words an answer about a video is framed in, whatever it says (as `words` gives them).
const FRAME: &[&str] = &[
    "show",
    "shown",
    "call",
    "called",
    "mentioned",
    "mention",
    "screen",
    "timeline",
    "text",
    "written",
    "seen",
    "appear",
    "answer",
    "question",
    "moment",
    "stamp",
];

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
    /// The small model's answer: attributed, and held whole when it may be replaced.
    small: Option<Small>,
    /// What is held of an answer that may be replaced.
    answer: String,
    /// A stamp it wrote stood inside a moment, or was moved to one.
    tied: bool,
}

/// What the small embedded model's answer is checked against beyond its stamps.
pub struct Small {
    /// The question's words: an answer does not come from a moment by repeating them.
    question: HashSet<String>,
    /// The moment that best answers the question, as an answer: given instead of one not
    /// grounded in the timeline. None: the answer streams as it comes.
    evidence: Option<String>,
    /// The words of the moment the question is about, when it names one by its position: an
    /// answer that has none of them is about another moment.
    about: Option<HashSet<String>>,
}

impl Small {
    pub fn new(question: &str, evidence: Option<String>) -> Self {
        Self {
            question: words(question),
            evidence,
            about: None,
        }
    }

    /// The answer must be about the moment whose words are `text`.
    pub fn about(self, text: &str) -> Self {
        Self {
            about: Some(words(text)),
            ..self
        }
    }

    /// Words an answer must share with a moment, beyond the question's, to come from it.
    fn needed(&self) -> usize {
        if self.question.is_empty() {
            ATTRIBUTED_WORDS
        } else {
            1
        }
    }
}

/// `segment` as the answer to `question`: its sentence, screen text or picture that shares most
/// words with the question, at its moment, quoted; `cue`: the sentence to quote instead (the
/// nearest in meaning, when search by meaning found it). `video`: its name, when several were
/// asked about.
pub fn evidence(
    segment: &Segment,
    question: &str,
    cue: Option<usize>,
    video: Option<&str>,
) -> String {
    let says = |text: &str| format!("the video says: \"{}\"", shortened(text, QUOTED_WORDS));
    if let Some(cue) = cue.and_then(|i| segment.cues().into_iter().nth(i)) {
        return answered(cue.start_s, &says(&cue.text), video);
    }
    let asked = words(question);
    let overlap = |text: &str| words(text).intersection(&asked).count();
    let mut best: Option<(usize, f64, String)> = None;
    let mut consider = |at: f64, what: String, text: &str| {
        let score = overlap(text);
        if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
            best = Some((score, at, what));
        }
    };
    for cue in segment.cues() {
        consider(cue.start_s, says(&cue.text), &cue.text);
    }
    if !segment.on_screen_text.trim().is_empty() {
        let text = &segment.on_screen_text;
        consider(
            segment.start_s,
            format!("the screen shows \"{}\"", shortened(text, QUOTED_WORDS)),
            text,
        );
    }
    if !segment.caption.trim().is_empty() {
        let text = &segment.caption;
        consider(
            segment.start_s,
            format!(
                "the video shows {}",
                shortened(text, QUOTED_WORDS).trim_end_matches('.')
            ),
            text,
        );
    }
    let (at, what) = best.map_or_else(
        || (segment.start_s, "the video has this moment".to_string()),
        |(_, at, what)| (at, what),
    );
    answered(at, &what, video)
}

/// `At [00:15] <what>.`, naming the video when several were asked about.
fn answered(at: f64, what: &str, video: Option<&str>) -> String {
    // A quoted sentence ends the answer with its own stop.
    let stop = if what.trim_end_matches('"').ends_with(['.', '!', '?', '…']) {
        ""
    } else {
        "."
    };
    match video {
        Some(name) => format!("In \"{name}\", at {} {what}{stop}", stamp(at)),
        None => format!("At {} {what}{stop}", stamp(at)),
    }
}

impl Citations {
    /// The check for an answer grounded in `segments` (of every video it was given); with
    /// `small`, an answer that cites nothing is given its stamp, and one not grounded in the
    /// timeline is replaced with the evidence, when there is some.
    pub fn new<'a>(segments: impl IntoIterator<Item = &'a Segment>, small: Option<Small>) -> Self {
        let mut moments = Vec::new();
        for s in segments {
            let cues = s.cues();
            // One sentence said well into its segment is a moment of its own too.
            if cues.len() > 1
                || cues
                    .first()
                    .is_some_and(|c| c.start_s >= s.start_s + SLACK_S)
            {
                // The segment keeps what was shown in it; what was said is its sentences'
                // (else it would share more words with an answer than any one sentence).
                let shown = format!("{} {}", s.on_screen_text, s.caption);
                moments.push(Moment::new(s.start_s, s.end_s, &shown));
                let ends = cues.iter().skip(1).map(|c| c.start_s).chain([s.end_s]);
                for (cue, end_s) in cues.iter().zip(ends) {
                    moments.push(Moment::new(cue.start_s, end_s, &cue.text));
                }
            } else {
                moments.push(Moment::new(s.start_s, s.end_s, &s.text()));
            }
        }
        Self {
            moments,
            gap: false,
            held: String::new(),
            said: String::new(),
            small,
            answer: String::new(),
            tied: false,
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
                    let held = std::mem::take(&mut self.held);
                    let checked = self.checked(seconds, &held, &out);
                    self.tied |= !checked.is_empty() && !self.moments.is_empty();
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
        if self.holds_whole() {
            self.answer.push_str(&out);
            return String::new();
        }
        out
    }

    fn holds_whole(&self) -> bool {
        self.small.as_ref().is_some_and(|s| s.evidence.is_some())
    }

    /// What is still held at the answer's end (a space, a `[` that opened no stamp), as it
    /// came; for the small model, its stamp when it cited none, and a held answer whole or,
    /// not grounded in the timeline, the evidence instead.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        self.open_gap(&mut out);
        out.push_str(&std::mem::take(&mut self.held));
        let holds = self.holds_whole();
        let Some(small) = self.small.take() else {
            return out;
        };
        let said = self.said.clone() + &out;
        // The answer's own words: not the question's, nor those any answer is framed in.
        let mut own = words(&if holds {
            self.answer.clone() + &out
        } else {
            said.clone()
        });
        own.retain(|w| !small.question.contains(w) && !FRAME.contains(&w.as_str()));
        let source = self
            .best(&own)
            .filter(|(shared, _)| *shared >= small.needed())
            .map(|(_, moment)| moment.start_s);
        // Most of them must be the timeline's: an answer that borrows one of its words for a
        // sentence of made-up ones ("an instrument called the GARDEN by the band Cyclops") is
        // not grounded in it.
        let timeline = own
            .iter()
            .filter(|w| self.moments.iter().any(|m| m.words.contains(*w)))
            .count();
        let on_point = small
            .about
            .as_ref()
            .is_none_or(|about| own.iter().any(|w| about.contains(w)));
        let grounded = timeline * 2 >= own.len() && (self.tied || source.is_some()) && on_point;
        if !grounded {
            if let Some(evidence) = small.evidence {
                self.answer.clear();
                return evidence;
            }
        }
        if holds {
            out = std::mem::take(&mut self.answer) + &out;
        }
        if let Some(at) = source.filter(|_| !self.tied) {
            out.push_str(if said.ends_with(' ') { "" } else { " " });
            out.push_str(&stamp(at));
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
            .skip_while(|(_, c)| matches!(c, '.' | '!' | '?' | ' ' | '\n' | '"' | ')'))
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

/// The words that say what is cited (short ones say nothing), plurals as their singular.
fn words(text: &str) -> HashSet<String> {
    terms(text)
        .filter(|w| w.len() > 2)
        .map(|mut w| {
            if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
                w.pop();
            }
            w
        })
        .collect()
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

    fn cue(start_s: f64, end_s: f64, text: &str) -> crate::videos::model::Cue {
        crate::videos::model::Cue {
            start_s,
            end_s,
            text: text.to_string(),
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
        let check = Citations::new(&timeline(), None);
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
            Citations::new(&timeline, None)
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
            Citations::new(&[late], None).whole("The flowers are watered at sunset. [00:30]"),
            "The flowers are watered at sunset. [00:40]"
        );
        // A stamp at the right sentence stands; one whose words are nowhere stands too.
        assert_eq!(
            Citations::new(&timeline, None).whole("They plant tomatoes [00:06]. Hello [00:01]."),
            "They plant tomatoes [00:06]. Hello [00:01]."
        );
        // Words of two of its sentences: the stamp goes to the one with most of them, not to
        // the segment that has them all.
        assert_eq!(
            Citations::new(&timeline, None).whole(
                "The planting of tomatoes in the sunny corner is done by the garden tour. [00:00]"
            ),
            "The planting of tomatoes in the sunny corner is done by the garden tour. [00:06]"
        );
        // An uncited answer is given its sentence's moment, not the segment's.
        assert_eq!(
            Citations::new(&timeline, Some(Small::new("", None)))
                .whole("They plant tomatoes in the sunny corner."),
            "They plant tomatoes in the sunny corner. [00:06]"
        );
    }

    #[test]
    fn a_stream_holds_back_only_a_stamp_in_progress() {
        let mut check = Citations::new(&timeline(), None);
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
        let small =
            |text: &str| Citations::new(&timeline(), Some(Small::new("", None))).whole(text);
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
            Citations::new(&timeline(), None).whole("They water the flowers."),
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
            assert_eq!(Citations::new(&timeline(), None).whole(text), text);
        }
    }

    #[test]
    fn the_small_models_made_up_answer_is_replaced_with_the_moment_that_answers() {
        let question = "What vehicle is mentioned?";
        let best = &timeline()[1];
        let asked = || {
            Citations::new(
                &timeline(),
                Some(Small::new(
                    question,
                    Some(evidence(best, question, None, None)),
                )),
            )
        };
        // Streamed, nothing passes before the end: the answer may yet be replaced.
        let mut check = asked();
        assert_eq!(check.feed("The vehicle mentioned is a 2018 "), "");
        assert_eq!(check.feed("Toyota Corolla."), "");
        assert_eq!(
            check.finish(),
            "At [00:20] the video says: \"The bicycle is parked beside the red barn.\""
        );
        // Tied to a moment by a word the question did not bring: kept, and given its stamp.
        assert_eq!(
            asked().whole("The vehicle mentioned is a bicycle."),
            "The vehicle mentioned is a bicycle. [00:20]"
        );
        // By a real stamp: kept as written.
        assert_eq!(
            asked().whole("A vehicle is mentioned [00:25]."),
            "A vehicle is mentioned [00:25]."
        );
        // One word of the timeline in a sentence of made-up ones is not grounded in it.
        assert_eq!(
            asked().whole("It is a red Toyota Corolla from the Mysicle dealership [00:25]."),
            asked().whole("")
        );
        // Repeating the question ties it to nothing; nor does a stamp past every moment.
        assert_eq!(
            asked().whole("A vehicle is mentioned [09:00]."),
            asked().whole("")
        );
    }

    #[test]
    fn an_answer_about_another_moment_than_the_position_asked_is_replaced() {
        let mut slides = vec![segment(0.0, 10.0, ""), segment(10.0, 20.0, "")];
        slides[0].on_screen_text = "THREE".into();
        slides[1].on_screen_text = "FOUR".into();
        let question = "What does the third slide say?";
        let check = || {
            let evidence = evidence(&slides[0], question, None, None);
            Citations::new(
                &slides,
                Some(Small::new(question, Some(evidence)).about("THREE")),
            )
        };
        assert_eq!(
            check().whole("The third slide says FOUR [00:12]."),
            "At [00:00] the screen shows \"THREE\"."
        );
        assert_eq!(
            check().whole("It says THREE [00:02]."),
            "It says THREE [00:02]."
        );
    }

    #[test]
    fn evidence_quotes_the_part_of_the_moment_the_question_is_about() {
        let mut moment = segment(
            10.0,
            20.0,
            "Welcome to the garden tour. Today we plant tomatoes in the sunny corner.",
        );
        moment.cues = vec![
            cue(10.0, 13.0, "Welcome to the garden tour."),
            cue(16.0, 19.0, "Today we plant tomatoes in the sunny corner."),
        ];
        moment.on_screen_text = "GARDEN\nTOUR".into();
        assert_eq!(
            evidence(&moment, "Where are the tomatoes planted?", None, None),
            "At [00:16] the video says: \"Today we plant tomatoes in the sunny corner.\""
        );
        assert_eq!(
            evidence(
                &moment,
                "What is written on the tour sign?",
                None,
                Some("walk.mp4")
            ),
            "In \"walk.mp4\", at [00:10] the video says: \"Welcome to the garden tour.\""
        );
        // The sentence search by meaning found, though no word of it is the question's.
        assert_eq!(
            evidence(&moment, "Which vegetable grows there?", Some(1), None),
            "At [00:16] the video says: \"Today we plant tomatoes in the sunny corner.\""
        );
        let mut shown = segment(4.0, 8.0, "");
        shown.on_screen_text = "BICYCLE".into();
        assert_eq!(
            evidence(&shown, "Which two-wheeled vehicle appears?", None, None),
            "At [00:04] the screen shows \"BICYCLE\"."
        );
        let long = segment(0.0, 60.0, &"word ".repeat(100));
        assert!(evidence(&long, "anything", None, None).ends_with(" …\""));
    }
}
