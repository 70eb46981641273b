//! Videos with known facts, made here (ffmpeg lavfi + espeak-ng): sentences spoken at known
//! moments with silences between them, and scenes with every kind of cut between them. Used by
//! `tests/timeline.rs` and by `chatapi-bench timeline` (through `#[path]`), so the test and the
//! benchmark judge the same facts.

use std::path::{Path, PathBuf};
use std::process::Command;

/// When each sentence starts, and a word of it the recogniser reliably hears.
pub const SAID: [(f64, &str, &str); 4] = [
    (1.0, "Welcome to the garden tour.", "garden"),
    (
        6.0,
        "Today we plant tomatoes in the sunny corner.",
        "tomatoes",
    ),
    (15.0, "The bicycle is parked beside the red barn.", "parked"),
    (
        40.0,
        "Finally we water the flowers before sunset.",
        "sunset",
    ),
];
/// The sentences video's length: twenty silent seconds before the last sentence, some after.
pub const SAID_LENGTH_S: f64 = 48.0;

/// Scenes and the word on each (a thing, so a search by meaning can find it); where each starts. Between them every kind of cut: colour only
/// (red to a green of about the same brightness), words only (the same green), brightness and
/// hue, a pattern, and a fade through black; film grain over all of it.
pub const SCENES: [(f64, &str); 6] = [
    (0.0, "PIANO"),
    (4.0, "BICYCLE"),
    (8.0, "VOLCANO"),
    (12.0, "LIBRARY"),
    (16.0, "ROCKET"),
    (22.0, "GARDEN"),
];

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";

/// Runs a program that makes media, failing loudly (and saying how to install it).
pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/install-build-deps.sh installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `SAID` at its moments over a plain picture, as `dir/sentences.mp4` (made unless there).
pub fn sentences(dir: &Path) -> PathBuf {
    let file = dir.join("sentences.mp4");
    if file.exists() {
        return file;
    }
    let mut mix = Command::new("ffmpeg");
    mix.args(["-y", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("color=c=0x204060:s=320x180:r=10:d={SAID_LENGTH_S}"));
    let mut filters = Vec::new();
    for (i, (at, sentence, _)) in SAID.iter().enumerate() {
        let wav = dir.join(format!("said-{i}.wav"));
        run(Command::new("espeak-ng")
            .args(["-v", "en-us", "-s", "150", "-w"])
            .arg(&wav)
            .arg(sentence));
        mix.arg("-i").arg(&wav);
        let ms = (at * 1000.0) as u64;
        filters.push(format!("[{}:a]adelay={ms}|{ms}[a{i}]", i + 1));
    }
    let inputs: String = (0..SAID.len()).map(|i| format!("[a{i}]")).collect();
    filters.push(format!(
        "{inputs}amix=inputs={}:normalize=0,apad=whole_dur={SAID_LENGTH_S}[a]",
        SAID.len()
    ));
    mix.args([
        "-filter_complex",
        &filters.join(";"),
        "-map",
        "0:v",
        "-map",
        "[a]",
    ])
    .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
    .args(["-t", &SAID_LENGTH_S.to_string()])
    .arg(&file);
    run(&mut mix);
    file
}

/// `SCENES`, with their cuts, as `dir/cuts.mp4` (made unless there).
pub fn cuts(dir: &Path) -> PathBuf {
    let file = dir.join("cuts.mp4");
    if file.exists() {
        return file;
    }
    let text = |t: &str| {
        format!(
            "drawtext=fontfile={FONT}:text='{t}':fontsize=56:fontcolor=white:x=(w-text_w)/2:y=(h-text_h)/2"
        )
    };
    let size = "s=640x360:r=25";
    let inputs = [
        format!("color=c=0xC03030:{size}:d=4,{}", text("PIANO")),
        format!("color=c=0x309630:{size}:d=4,{}", text("BICYCLE")),
        format!("color=c=0x309630:{size}:d=4,{}", text("VOLCANO")),
        format!("color=c=0x404080:{size}:d=4,{}", text("LIBRARY")),
        // Colour bars above, the words on a plain band below (tesseract reads no words laid
        // over a pattern).
        format!(
            "smptebars=s=640x200:r=25:d=5,pad=640:360:0:0:color=0x303030,drawtext=fontfile={FONT}:text='ROCKET':fontsize=56:fontcolor=white:x=(w-text_w)/2:y=260,fade=t=out:st=4:d=1"
        ),
        format!("color=c=black:{size}:d=1"),
        format!(
            "color=c=0x2050C0:{size}:d=5,{},fade=t=in:st=0:d=1",
            text("GARDEN")
        ),
    ];
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-y", "-loglevel", "error"]);
    for input in &inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    let streams: String = (0..inputs.len()).map(|i| format!("[{i}:v]")).collect();
    cmd.args([
        "-filter_complex",
        &format!(
            "{streams}concat=n={}:v=1:a=0,format=yuv420p,noise=alls=10:allf=t+u[v]",
            inputs.len()
        ),
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
    ])
    .arg(&file);
    run(&mut cmd);
    file
}

/// Slide changes in a video whose keyframes come every 10 s exactly (no keyframe at a cut, as
/// an encoder with scene detection off writes them): one mid-way between keyframes, one a
/// moment after a keyframe, one later on; grain throughout. The scene pass decodes only the
/// stretches between keyframes that differ, and must still place each cut.
pub const SLIDES: [(f64, &str); 4] = [(0.0, "ONE"), (13.0, "TWO"), (20.2, "THREE"), (71.0, "FOUR")];
pub const SLIDES_LENGTH_S: f64 = 120.0;

/// `SLIDES` as `dir/slides.mp4` (made unless there).
pub fn slides(dir: &Path) -> PathBuf {
    let file = dir.join("slides.mp4");
    if file.exists() {
        return file;
    }
    let mut text = String::new();
    for (i, (at, word)) in SLIDES.iter().enumerate() {
        let until = SLIDES.get(i + 1).map_or(SLIDES_LENGTH_S, |s| s.0);
        text.push_str(&format!(
            ",drawtext=fontfile={FONT}:text='{word}':fontsize=64:fontcolor=white:\
             x=(w-text_w)/2:y=(h-text_h)/2:enable='gte(t,{at})*lt(t,{until})'"
        ));
    }
    run(Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "color=c=0x305070:s=480x270:r=25:d={SLIDES_LENGTH_S}{text},noise=alls=8:allf=t"
        ))
        .args(["-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-x264-params", "keyint=250:min-keyint=250:scenecut=0"])
        .arg(&file));
    file
}

/// Two hours of grey picture as `dir/two-hours-grey.mp4` (made unless there), and its subtitles
/// as `dir/two-hours.srt`: a line every 30 s (240), on six subjects of 20 minutes each. A
/// timeline too long for one prompt, made in seconds (`tests/digests.rs`, `chatapi-bench
/// digests`).
pub fn two_hours_with_subtitles(dir: &Path) -> (PathBuf, PathBuf) {
    let video = dir.join("two-hours-grey.mp4");
    if !video.exists() {
        run(Command::new("ffmpeg")
            .args([
                "-y",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "color=c=gray:s=64x36:r=1",
            ])
            .args([
                "-t",
                "7200",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "600",
            ])
            .args(["-pix_fmt", "yuv420p"])
            .arg(&video));
    }
    let subjects = [
        "tomatoes", "bread", "bicycles", "painting", "guitars", "trees",
    ];
    let stamp = |s: u32| format!("{:02}:{:02}:{:02},000", s / 3600, s / 60 % 60, s % 60);
    let srt: String = (0..240u32)
        .map(|n| {
            let at = n * 30;
            let subject = subjects[(at / 1200) as usize];
            format!(
                "{}\n{} --> {}\nNow about {subject}, step {}: what to do, and why it matters.\n\n",
                n + 1,
                stamp(at),
                stamp(at + 25),
                n + 1
            )
        })
        .collect();
    let subtitles = dir.join("two-hours.srt");
    std::fs::write(&subtitles, srt).unwrap();
    (video, subtitles)
}
