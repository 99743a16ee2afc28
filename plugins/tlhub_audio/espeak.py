"""The ``espeak_words`` source: a spoken-word corpus synthesised with espeak-ng, for supervised pretraining.

There is no real pretrained wav2vec2 and no network here, so step 1 of transfer learning for audio
trains on a larger, different audio task that can be built offline: hundreds of English words that are
not digit names, each spoken in many espeak-ng voices (accents), voice variants, speeds and pitches.
The corpus is synthesised once into a cache folder (deterministic: the same settings give the same
files) and described in ``corpus.json`` there and in the dataset's description, which the model card
quotes.

    data:
      source: espeak_words
      load_options: {clips_per_word: 20, seed: 0}    # also: words (a list), folder
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tlhub.errors import DataError

if TYPE_CHECKING:
    import datasets
    import numpy as np

    from tlhub.recipe import DataSection

ESPEAK = "espeak-ng"
# Digit names and words that sound like them: never a pretraining class, so that nothing of the
# fine-tuning task (spoken digits) leaks into pretraining.
DIGIT_WORDS = frozenset(
    "zero one two three four five six seven eight nine oh o owe won to too tew for fore ate nein tree free".split()
)
# 300 common English words, hand-picked, then filtered with espeak-ng's own phonemes (en-us and en-gb):
# dropped any word that sounds like, rhymes with, or contains a digit name (no, go, shoe, knee, wait,
# before, potato, wonder ...), and homophones of an earlier word (right / write).
WORDS: tuple[str, ...] = tuple(
    """
    apple water house garden window table chair kitchen paper pencil yellow purple orange
    silver golden black white green brown red happy angry quiet simple early under above
    behind between across mother father sister brother baby family people children woman
    person morning evening summer winter autumn spring weather rain cloud thunder river
    mountain island ocean forest desert valley village city country dog cat horse rabbit
    monkey tiger lion chicken duck turtle bird fish snake mouse bear wolf eagle spider
    insect dragon bread butter cheese coffee sugar salt pepper honey rice carrot lemon
    banana cherry melon onion garlic cookie pizza doctor teacher farmer driver singer player
    writer painter baker captain music story picture letter number question answer problem
    reason idea money market office school hospital library station airport hotel church
    button pocket jacket shirt dress glove hat boot blanket bottle basket bucket hammer
    ladder candle mirror pillow wallet camera computer telephone radio engine rocket planet
    battery signal program message yes maybe please thank goodbye sorry welcome always never
    often sometimes again already almost enough really rather perhaps open close start
    finish begin listen speak carry follow jump walk talk laugh smile sleep dream think
    learn travel push pull hold give take make bring build break climb dance swim sing write
    draw paint cook clean wash strong weak heavy light dark bright warm cold hot wet big
    small long short tall wide narrow deep soft hard fast loud sharp smooth rough sweet
    bitter sour fresh left up down stop come back animal kitten puppy tiny giant pretty ugly
    clever honest gentle because until after during around inside outside sudden certain
    careful useful famous nervous curious serious secret special heart hand head face mouth
    nose finger shoulder stomach elbow leg arm foot neck ear eye hair car truck bus train
    boat plane bicycle wagon
""".split()
)
# English voices that sound different from each other with espeak-ng 1.51 ('en' is British English;
# 'en-gb+variant' ignores the variant, 'en+variant' applies it). MBROLA voices are not installed.
VOICES: tuple[str, ...] = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
# Voice variants (espeak-ng-data/voices/!v): '' is the voice itself. Names are case-sensitive; an unknown
# one silently falls back to the plain voice, so the list was checked file by file.
VARIANTS: tuple[str, ...] = (
    "",
    *"""
    Alex Alicia Andrea Andy Annie AnxiousAndy Demonic Denis Diogo Gene Gene2 Henrique Hugo
    Jacky Lee Marco Mario Michael Mike Nguyen RicishayMax RicishayMax2 RicishayMax3 Storm Tweaky UniRobot
    adam anika anikaRobot announcer antonio aunty belinda benjamin boris caleb croak david ed
    edward edward2 f1 f2 f3 f4 f5 grandma grandpa gustave iven iven2 iven3
    iven4 john kaukovalta klatt klatt2 klatt3 klatt4 klatt5 klatt6 linda m1 m2 m3
    m4 m5 m6 m7 m8 marcelo max michel miguel norbert pablo paul pedro
    quincy rob robert robosoft robosoft2 robosoft3 robosoft4 robosoft5 robosoft6 robosoft7 robosoft8 sandro shelby
    steph steph2 steph3 travis victor whisper whisperf zac
""".split(),
)
SPEEDS = (110, 130, 150, 175, 200, 230)  # words per minute (espeak-ng's default: 175)
PITCHES = (15, 30, 45, 60, 75, 90)  # 0-99 (default 50)
# Half the clips are stored at 8 kHz (telephone band, like many recordings of speech), half at 16 kHz.
RATES = (16000, 8000)


class Options(BaseModel):
    """``data.load_options`` of the ``espeak_words`` source."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    words: list[str] | None = Field(
        None, min_length=2, description="The words to speak (classes); default: 300 common English words."
    )
    clips_per_word: int = Field(20, gt=0, le=10_000, description="Clips synthesised per word.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the voices, speeds and pitches drawn per clip.")
    folder: str | None = Field(
        None, min_length=1, description="Where the corpus is kept; default: a folder in the datasets cache."
    )


def espeak_version() -> str:
    try:
        out = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise DataError(
            "data.source: espeak_words needs the espeak-ng program (Debian/Ubuntu: apt-get install espeak-ng)"
        ) from None
    return out.split("Data at")[0].strip()


def plan(words: list[str], clips_per_word: int, seed: int) -> list[dict[str, Any]]:
    """Each word's clips: distinct (voice, variant, speed, pitch) draws from a generator seeded by the word."""
    rows = []
    for word in words:
        rng = random.Random(f"{seed}|{word}")
        seen: set[tuple[Any, ...]] = set()
        while len(seen) < clips_per_word:
            combo = (rng.choice(VOICES), rng.choice(VARIANTS), rng.choice(SPEEDS), rng.choice(PITCHES))
            if combo in seen:
                continue
            seen.add(combo)
            voice, variant, speed, pitch = combo
            index = len(seen) - 1
            rows.append(
                {
                    "path": f"{word}/{word}_{index:03d}.wav",
                    "word": word,
                    "voice": f"{voice}+{variant}" if variant else voice,
                    "speed": speed,
                    "pitch": pitch,
                    "rate": RATES[index % len(RATES)],
                }
            )
    return rows


def _trimmed(samples: np.ndarray, rate: int, floor: float = 0.02) -> np.ndarray:
    """Cut leading and trailing silence (below ``floor`` of the peak), keeping 20 ms either side."""
    import numpy as np

    loud = np.flatnonzero(np.abs(samples) >= floor * np.abs(samples).max())
    margin = rate // 50
    return samples[max(loud[0] - margin, 0) : loud[-1] + margin + 1]


def synthesise(folder: Path, row: dict[str, Any]) -> None:
    """One clip: espeak-ng to a temporary WAV, trimmed, resampled (torchaudio), written as 16-bit mono."""
    import numpy as np
    import torch
    import torchaudio.functional

    target = folder / row["path"]
    spoken = target.with_suffix(".espeak.wav")
    command = [ESPEAK, "-v", row["voice"], "-s", str(row["speed"]), "-p", str(row["pitch"]), "-w", str(spoken)]
    result = subprocess.run([*command, row["word"]], capture_output=True, text=True)
    if result.returncode != 0 or result.stderr.strip():
        raise DataError(f"data: espeak-ng failed on {row['word']!r} ({' '.join(command)}): {result.stderr.strip()}")
    with wave.open(str(spoken), "rb") as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    spoken.unlink()
    if not samples.size or np.abs(samples).max() < 0.01:
        raise DataError(f"data: espeak-ng produced silence for {row['word']!r} with voice {row['voice']}")
    clip = torchaudio.functional.resample(torch.from_numpy(_trimmed(samples, rate)), rate, row["rate"]).numpy()
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(row["rate"])
        w.writeframes((np.clip(clip, -1, 1) * 32767).astype("<i2").tobytes())


def build_corpus(folder: Path, words: list[str], clips_per_word: int, seed: int) -> dict[str, Any]:
    """Synthesise the corpus into ``folder`` unless a complete one is there; return its description."""
    done = folder / "corpus.json"
    if done.is_file():
        return json.loads(done.read_text())  # type: ignore[no-any-return]
    rows = plan(words, clips_per_word, seed)
    # Each process builds in its own folder and renames it into place: several processes of one run
    # (torchrun) may all get here; the first rename wins, and the others' identical copies are dropped.
    building = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    for word in words:
        (building / word).mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=2) as pool:  # the threads wait on espeak-ng processes
        list(pool.map(lambda row: synthesise(building, row), rows))
    corpus = {
        "synthesiser": espeak_version(),
        "words": len(words),
        "clips_per_word": clips_per_word,
        "clips": len(rows),
        "seed": seed,
        "voices": list(VOICES),
        "variants": len(VARIANTS),
        "speeds_wpm": list(SPEEDS),
        "pitches": list(PITCHES),
        "rates_hz": list(RATES),
        "processing": "leading/trailing silence below 2% of the peak trimmed (20 ms kept), resampled with "
        "torchaudio, 16-bit mono WAV",
        "rows": rows,
    }
    (building / "corpus.json").write_text(json.dumps(corpus, indent=1))
    try:
        building.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(building)
    return corpus


def describe(corpus: dict[str, Any]) -> str:
    return (
        f"{corpus['clips']:,} clips of {corpus['words']} English words (no digit names or homophones), "
        f"{corpus['clips_per_word']} per word, synthesised by {corpus['synthesiser']} with voices "
        f"{', '.join(corpus['voices'])} x {corpus['variants']} voice variants, speeds {corpus['speeds_wpm']} wpm, "
        f"pitches {corpus['pitches']}, drawn per word with seed {corpus['seed']}; stored at "
        f"{' and '.join(str(r) for r in corpus['rates_hz'])} Hz (alternating); {corpus['processing']}"
    )


def load_espeak_words(data: DataSection) -> datasets.DatasetDict:
    """The corpus as one ``train`` split: ``audio`` (``datasets.Audio``) and ``label`` (the word)."""
    import datasets

    options = Options.model_validate(data.load_options)
    words = list(options.words or WORDS)
    if bad := sorted(set(words) & DIGIT_WORDS):
        raise DataError(f"data.load_options.words: {', '.join(bad)} sound like digit names; leave them out")
    if repeated := sorted({w for w in words if words.count(w) > 1}):
        raise DataError(f"data.load_options.words: {', '.join(repeated)} listed more than once")
    clips_per_word, seed = options.clips_per_word, options.seed
    settings = json.dumps([sorted(words), clips_per_word, seed, VOICES, VARIANTS, SPEEDS, PITCHES, RATES])
    key = hashlib.sha256(settings.encode()).hexdigest()[:12]
    default = Path(datasets.config.HF_DATASETS_CACHE).parent / "tlhub" / f"espeak_words-{key}"
    folder = Path(options.folder or default)
    espeak_version()  # a clear error before anything is built when the program is missing
    corpus = build_corpus(folder, words, clips_per_word, seed)
    info = datasets.DatasetInfo(description=describe(corpus))
    train = datasets.Dataset.from_dict(
        {"audio": [str(folder / r["path"]) for r in corpus["rows"]], "label": [r["word"] for r in corpus["rows"]]},
        info=info,
    ).cast_column("audio", datasets.Audio())
    return datasets.DatasetDict({"train": train})
