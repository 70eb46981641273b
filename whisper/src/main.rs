//! `chatapi-whisper`: speech-to-text for chatapi's video library, as a program of its own (see
//! Cargo.toml for why). The contract the server relies on:
//!
//! `chatapi-whisper --model MODEL --language LANG --output-srt OUT.srt AUDIO.wav`
//!
//! AUDIO is 16 kHz mono 16-bit PCM (the server extracts it with ffmpeg). The cues heard are
//! written to OUT as SRT (nothing heard: an empty file); exit 0 on success, 2 on bad input, 1 when
//! recognition fails, with one line on stderr saying why. Greedy decoding: whisper.cpp's fast
//! path, about 2 points of word error rate behind beam search for half the time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

mod vad;

#[derive(Parser)]
#[command(
    version,
    about = "Speech-to-text for chatapi: a 16 kHz mono WAV in, SRT out"
)]
struct Cli {
    /// A whisper.cpp (ggml) model file.
    #[arg(long)]
    model: PathBuf,
    /// The spoken language (`en`, `de`...), or `auto` to detect it (multilingual models only).
    #[arg(long, default_value = "en")]
    language: String,
    #[arg(long)]
    output_srt: PathBuf,
    /// CPU threads; 0: all the machine's cores. chatapi sets it through the environment, so
    /// the recogniser's contract (`--model --language --output-srt AUDIO`) stays what any
    /// program can follow.
    #[arg(long, env = "CHATAPI_WHISPER_THREADS", default_value_t = 0)]
    threads: usize,
    /// Print whisper.cpp's own log (model, buffers, CPU features) to stderr.
    #[arg(long)]
    verbose: bool,
    /// Give whisper the whole recording instead of the stretches of speech (for comparison).
    #[arg(long)]
    no_vad: bool,
    audio: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Unless asked for, whisper.cpp's own log lines go to the `log` facade, which nobody listens
    // to here: stderr stays for the one line that says what went wrong.
    if cli.verbose {
        eprintln!("{}", whisper_rs::print_system_info());
    } else {
        whisper_rs::install_logging_hooks();
    }
    let samples = match read_wav(&cli.audio) {
        Ok(samples) => samples,
        Err(why) => {
            eprintln!("chatapi-whisper: {}: {why}", cli.audio.display());
            return ExitCode::from(2);
        }
    };
    match transcribe(&cli, &samples).and_then(|cues| write_srt(&cli.output_srt, &cues)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("chatapi-whisper: {why}");
            ExitCode::FAILURE
        }
    }
}

struct Cue {
    start_cs: i64,
    end_cs: i64,
    text: String,
}

fn read_wav(path: &Path) -> Result<Vec<f32>, String> {
    let reader = hound::WavReader::open(path).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.sample_rate != 16_000 || spec.bits_per_sample != 16 {
        return Err(format!(
            "expected 16 kHz mono 16-bit PCM, got {} Hz, {} channels, {} bits",
            spec.sample_rate, spec.channels, spec.bits_per_sample
        ));
    }
    reader
        .into_samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / 32768.0).map_err(|e| e.to_string()))
        .collect()
}

fn transcribe(cli: &Cli, samples: &[f32]) -> Result<Vec<Cue>, String> {
    // Under one second there is nothing whisper can hear, and it refuses such input.
    if samples.len() < 16_000 {
        return Ok(Vec::new());
    }
    let model = cli.model.display();
    // whisper-rs leaves flash attention off, unlike whisper.cpp's own default; on this CPU path it
    // is the faster choice (a 120 s talk: 20 s off, 30 s on; the same words).
    let context = WhisperContext::new_with_params(&cli.model, WhisperContextParameters::default())
        .map_err(|e| {
            format!("cannot load the model {model}: {e} (scripts/fetch-model.sh fetches it)")
        })?;
    let mut state = context
        .create_state()
        .map_err(|e| format!("model {model}: {e}"))?;
    let threads = if cli.threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        cli.threads
    };
    let stretches = if cli.no_vad {
        vec![vad::Stretch {
            samples: 0..samples.len(),
            voice: 0,
        }]
    } else {
        vad::speech(samples)
    };
    let mut cues = Vec::new();
    for chunk in vad::chunks(&stretches) {
        let audio = chunk.audio(samples);
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(i32::try_from(threads).unwrap_or(1));
        params.set_language(Some(cli.language.as_str()));
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        state
            .full(params, &audio)
            .map_err(|e| format!("recognition failed: {e}"))?;
        let mut heard = Vec::new();
        for segment in state.as_iter() {
            let text = segment
                .to_str_lossy()
                .map_err(|e| format!("reading a segment: {e}"))?
                .trim()
                .to_string();
            // Whisper's non-speech markers ("[BLANK_AUDIO]", "(music)") are not words anyone said.
            let bracketed = (text.starts_with('[') && text.ends_with(']'))
                || (text.starts_with('(') && text.ends_with(')'));
            if !text.is_empty() && !bracketed {
                heard.push((segment.start_timestamp(), segment.end_timestamp(), text));
            }
        }
        cues.extend(
            chunk
                .place(heard)
                .into_iter()
                .map(|(start_cs, end_cs, text)| Cue {
                    start_cs,
                    end_cs,
                    text,
                }),
        );
    }
    Ok(cues)
}

fn write_srt(path: &Path, cues: &[Cue]) -> Result<(), String> {
    let mut out = String::new();
    for (i, cue) in cues.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            srt_time(cue.start_cs),
            srt_time(cue.end_cs),
            cue.text
        ));
    }
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(out.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Centiseconds as SRT's `HH:MM:SS,mmm`.
fn srt_time(cs: i64) -> String {
    let ms = cs.max(0) * 10;
    format!(
        "{:02}:{:02}:{:02},{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn srt_times() {
        assert_eq!(super::srt_time(0), "00:00:00,000");
        assert_eq!(super::srt_time(6_123), "00:01:01,230");
        assert_eq!(super::srt_time(360_000), "01:00:00,000");
    }
}
