"""The voice studio: an owner's voices — ElevenLabs clones and offline profiles — in one place.

Rows live in the project's `voices` table; every query filters on the owner, so one owner
never sees (or deletes, or uses) another's voices. Sample files are kept under
`$FACTORY_HOME/voices/<voice id>/` so a failed clone can be retried without the originals.

Decisions:
* Samples that fail the local check create no row and reach no provider: `clone` raises
  SamplesRejectedError with the report (every reason says what to do), and the name stays
  free. A clone the provider refuses is kept with status `failed` and the provider's reason;
  cloning again under that name replaces it.
* Settings are validated here (ranges per provider) and pushed to ElevenLabs before they are
  stored, so the studio and the provider never disagree.
* Offline profiles (`provider: offline`) need no key: speed is the offline voice's speed, pitch
  (semitones) is applied to the test phrase with ffmpeg (asetrate + atempo keeps the length, so
  word timings stay right). The pipeline's offline path does not read profiles (yet): it
  speaks at the channel's `voice_speed`, which the script's duration fitting measures.
* Test phrases and clones are paid calls: they go to the cost ledger with stage
  `voice_test`/`voice_clone` and no topic.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import wave
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from factory_core import voice_samples as vs
from factory_core.costs import PriceTable, cost_line
from factory_core.models import Language, Voiceover
from factory_core.text import split_sentences
from factory_core.timing import spoken_chars
from factory_resources import project_db
from factory_resources.elevenlabs_voice import ElevenLabsError, ElevenLabsVoice
from factory_resources.faults import ProviderError
from factory_resources.ffmpeg import RenderError, run_ffmpeg
from factory_resources.voices import CALIBRATION_TEXT, OfflineVoice

TEST_PHRASES = {
    Language.EN: "Hello! This is how I sound. Small choices add up over time.",
    Language.RU: "Привет! Вот так звучит мой голос. Мелочи складываются со временем.",
}


class VoiceStudioError(ValueError):
    """Bad input to the studio (unknown voice, name taken, settings out of range)."""


class VoiceNotFoundError(VoiceStudioError):
    pass


class SamplesRejectedError(VoiceStudioError):
    def __init__(self, report: vs.SampleReport) -> None:
        self.report = report
        super().__init__("samples rejected:\n" + "\n".join(f"  - {r}" for r in report.reasons()))


class ElevenLabsSettings(BaseModel):
    """ElevenLabs voice settings and their API ranges; None = the provider's default."""

    model_config = ConfigDict(extra="forbid")

    stability: float | None = Field(None, ge=0, le=1)
    similarity_boost: float | None = Field(None, ge=0, le=1)
    style: float | None = Field(None, ge=0, le=1)
    speed: float | None = Field(None, ge=0.7, le=1.2)
    use_speaker_boost: bool | None = None


class OfflineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speed: float = Field(1.0, ge=0.7, le=1.4, description="1.2 speaks 20% faster.")
    pitch: float = Field(0.0, ge=-12, le=12, description="Semitones up (+) or down (-).")


SETTINGS_MODELS: dict[str, type[BaseModel]] = {
    "elevenlabs": ElevenLabsSettings,
    "offline": OfflineSettings,
}


def pace_of(spoken: Voiceover) -> float:
    """Letters per second of speech (pauses between sentences left out)."""
    speech_s = sum(max(0.0, s.end - s.start) for s in spoken.sentences)
    letters = spoken_chars(" ".join(s.text for s in spoken.sentences))
    return letters / speech_s if speech_s > 0 else 0.0


class VoiceRecord(BaseModel):
    """One row of the `voices` table."""

    id: str
    owner: str
    name: str
    provider: str
    provider_voice_id: str | None = None
    language: Language = Language.EN
    status: str
    error: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    samples: list[dict[str, Any]] = Field(default_factory=list)
    usage_count: int = 0
    chars_per_second: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


def validate_settings(provider: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as stored, or VoiceStudioError naming the value out of range."""
    try:
        model = SETTINGS_MODELS[provider].model_validate(settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise VoiceStudioError(f"invalid {provider} voice settings: {problems}") from None
    return model.model_dump(exclude_none=True)


def _clean(text: str, what: str) -> str:
    cleaned = " ".join((text or "").split())
    if not cleaned or len(cleaned) > 120:
        raise VoiceStudioError(f"{what} must be 1-120 characters, got {text!r}")
    return cleaned


def pitch_shift(wav_path: Path, semitones: float) -> None:
    """Shifts pitch in place and keeps the length: resample faster, then stretch back."""
    if abs(semitones) < 0.01:
        return
    with wave.open(str(wav_path), "rb") as wav:
        rate = wav.getframerate()
    factor = 2 ** (semitones / 12)
    shifted = wav_path.with_name(f".pitch-{wav_path.name}")
    run_ffmpeg(
        ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(wav_path),
         "-af", f"asetrate={rate * factor:.3f},aresample={rate},atempo={1 / factor:.6f}",
         "-ac", "1", "-c:a", "pcm_s16le", str(shifted)],
        what="pitch shift",
    )  # fmt: skip
    shifted.replace(wav_path)


def find_voice(engine: sa.Engine, owner: str, name: str | None) -> VoiceRecord | None:
    """The owner's voice of that name (any status), or None; never another owner's."""
    if not name:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(project_db.voices).where(
                project_db.voices.c.owner == owner, project_db.voices.c.name == name
            )
        ).mappings().first()  # fmt: skip
    return VoiceRecord.model_validate(dict(row)) if row else None


class VoiceStudio:
    """An owner's voices. Thin: the sample check is factory_core.voice_samples, the provider
    calls are ElevenLabsVoice's; this class keeps the rows and files in step with them."""

    def __init__(
        self,
        engine: sa.Engine,
        elevenlabs: ElevenLabsVoice | None,
        home: Path,
        *,
        api_key_env: str = "ELEVENLABS_API_KEY",
        offline: OfflineVoice | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self.engine = engine
        self.elevenlabs = elevenlabs
        self.home = Path(home)
        self.api_key_env = api_key_env
        self.offline = offline or OfflineVoice()
        self.prices = prices or project_db.price_table(self.home)

    # --- samples ------------------------------------------------------------------------

    def check_samples(self, files: list[Path]) -> vs.SampleReport:
        """Decodes every file with ffmpeg (native rate and channels) and checks it."""
        verdicts: list[vs.SampleVerdict] = []
        for path in map(Path, files):
            if not path.is_file():
                verdicts.append(
                    vs.rejected_file(path.name, 0, "no such file; check the path")
                )  # fmt: skip
                continue
            size = path.stat().st_size
            early = vs.precheck_file(path.name, size)
            if early:  # wrong format or too big: no point decoding it
                verdicts.append(vs.SampleVerdict(file=path.name, accepted=False, reasons=early,
                                                 size_bytes=size))  # fmt: skip
                continue
            try:
                samples, rate = _decode(path)
            except RenderError:
                verdicts.append(vs.rejected_file(
                    path.name, size, "not a readable audio file; export it again as wav or mp3"
                ))  # fmt: skip
                continue
            verdicts.append(vs.check_sample(path.name, size, samples, rate))
        return vs.build_report(verdicts)

    # --- rows ---------------------------------------------------------------------------

    def find(self, owner: str, name: str) -> VoiceRecord | None:
        return find_voice(self.engine, owner, name)

    def get(self, owner: str, name: str) -> VoiceRecord:
        record = self.find(owner, name)
        if record is None:
            raise VoiceNotFoundError(
                f"owner {owner!r} has no voice named {name!r}; see `factory voices list "
                f"--owner {owner}`"
            )
        return record

    def list(self, owner: str) -> list[VoiceRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(project_db.voices)
                .where(project_db.voices.c.owner == owner)
                .order_by(project_db.voices.c.name)
            ).mappings()  # fmt: skip
            return [VoiceRecord.model_validate(dict(r)) for r in rows]

    def _update(self, record: VoiceRecord, **values: Any) -> VoiceRecord:
        with self.engine.begin() as conn:
            conn.execute(
                project_db.voices.update()
                .where(project_db.voices.c.id == record.id,
                       project_db.voices.c.owner == record.owner)
                .values(**values)
            )  # fmt: skip
        return self.get(record.owner, record.name)

    def _insert(self, **values: Any) -> VoiceRecord:
        with self.engine.begin() as conn:
            conn.execute(project_db.voices.insert().values(**values))
        return self.get(values["owner"], values["name"])

    def _name_taken_by(self, owner: str, name: str) -> VoiceRecord | None:
        """A failed voice gives its name back (returned, to be replaced); any other one keeps
        it (VoiceStudioError)."""
        existing = self.find(owner, name)
        if existing is not None and existing.status != "failed":
            raise VoiceStudioError(
                f"owner {owner!r} already has a voice named {name!r} ({existing.provider}, "
                f"{existing.status}); delete it first or choose another name"
            )
        return existing

    def _forget(self, record: VoiceRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                project_db.voices.delete().where(
                    project_db.voices.c.id == record.id, project_db.voices.c.owner == record.owner
                )
            )
        shutil.rmtree(self.home / "voices" / record.id, ignore_errors=True)

    # --- voices -------------------------------------------------------------------------

    def clone(
        self,
        owner: str,
        name: str,
        files: list[Path],
        language: Language | str = Language.EN,
        description: str = "",
    ) -> VoiceRecord:
        """Checks the samples, then clones at ElevenLabs. Rejected samples raise
        SamplesRejectedError (no row); a provider failure returns the row with status failed."""
        owner, name = _clean(owner, "owner"), _clean(name, "voice name")
        language = Language(language)
        failed = self._name_taken_by(owner, name)
        report = self.check_samples([Path(f) for f in files])
        if not report.accepted:
            raise SamplesRejectedError(report)
        unusable = (
            "no ElevenLabs resource configured"
            if self.elevenlabs is None
            else self.elevenlabs.available(self.api_key_env)
        )
        if unusable:
            raise VoiceStudioError(
                f"cannot clone without ElevenLabs: {unusable}; set it, or make an offline "
                "profile with `factory voices add-offline`"
            )
        if failed is not None:
            self._forget(failed)
        voice_id = uuid.uuid4().hex
        folder = self.home / "voices" / voice_id
        folder.mkdir(parents=True, exist_ok=True)
        kept: list[Path] = []
        by_name = {Path(f).name: Path(f) for f in files}
        for verdict in report.samples:
            if verdict.accepted:
                kept.append(folder / verdict.file)
                shutil.copyfile(by_name[verdict.file], kept[-1])
        record = self._insert(
            id=voice_id, owner=owner, name=name, provider="elevenlabs", language=language.value,
            status="pending", settings={}, usage_count=0,
            samples=[v.model_dump(include={"file", "seconds", "sample_rate"})
                     for v in report.samples if v.accepted],
        )  # fmt: skip
        assert self.elevenlabs is not None
        try:
            provider_id = self.elevenlabs.clone(
                name, kept, description, api_key_env=self.api_key_env
            )
        except ProviderError as exc:
            return self._update(record, status="failed", error=exc.reason)
        project_db.record_costs(
            self.engine,
            [cost_line(self.prices, "elevenlabs", "ivc", "voice", 1, stage="voice_clone")],
            owner=owner,
        )
        ready = self._update(record, status="ready", provider_voice_id=provider_id, error=None)
        return self.calibrate(ready)

    def calibrate(self, record: VoiceRecord) -> VoiceRecord:
        """Speaks the calibration text once (a few hundred billed characters) to learn the
        voice's pace, so the first script made for it already fits its duration. A failure
        leaves the voice ready without a pace (scripts are then sized with the offline voice's
        pace until the first narration teaches it)."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                spoken = self.test(record.owner, record.name, CALIBRATION_TEXT[record.language],
                                   Path(tmp) / "calibration.wav", count_use=False)  # fmt: skip
            except (ProviderError, VoiceStudioError):
                return self.get(record.owner, record.name)
        return self.learn_pace(record.owner, record.name, spoken, speed=1.0, weight=1.0)

    def learn_pace(
        self, owner: str, name: str, spoken: Voiceover, speed: float, weight: float = 0.5
    ) -> VoiceRecord:
        """Folds the pace of `spoken` (said at `speed`) into the voice's learned pace."""
        record = self.get(owner, name)
        measured = pace_of(spoken) / max(0.1, speed)
        if measured <= 0:
            return record
        old = record.chars_per_second
        pace = measured if old is None else (1 - weight) * old + weight * measured
        return self._update(record, chars_per_second=round(pace, 4))

    def create_offline(
        self,
        owner: str,
        name: str,
        language: Language | str = Language.EN,
        speed: float = 1.0,
        pitch: float = 0.0,
    ) -> VoiceRecord:
        """A voice profile on this machine (piper for English, espeak-ng for Russian)."""
        owner, name = _clean(owner, "owner"), _clean(name, "voice name")
        language = Language(language)
        settings = validate_settings("offline", {"speed": speed, "pitch": pitch})
        failed = self._name_taken_by(owner, name)
        if failed is not None:
            self._forget(failed)
        return self._insert(
            id=uuid.uuid4().hex, owner=owner, name=name, provider="offline",
            provider_voice_id=self.offline.provider(language), language=language.value,
            status="ready", settings=settings, samples=[], usage_count=0,
        )  # fmt: skip

    def test(
        self, owner: str, name: str, phrase: str | None, out_wav: Path, *,
        model_id: str = "eleven_multilingual_v2", output_format: str = "mp3_44100_128",
        count_use: bool = True,
    ) -> Voiceover:  # fmt: skip
        """Speaks a test phrase with the voice into `out_wav`; counts as a use."""
        record = self.get(owner, name)
        if record.status != "ready":
            raise VoiceStudioError(
                f"voice {name!r} is {record.status}"
                + (f" ({record.error})" if record.error else "")
                + "; clone it again before testing"
            )
        text = " ".join((phrase or TEST_PHRASES[record.language]).split())
        sentences = split_sentences(text) or [text]
        out_wav = Path(out_wav)
        out_wav.parent.mkdir(parents=True, exist_ok=True)
        if record.provider == "offline":
            spoken = self.offline.synthesize(
                sentences, record.language, float(record.settings.get("speed", 1.0)), out_wav
            )
            pitch_shift(out_wav, float(record.settings.get("pitch", 0.0)))
        else:
            if self.elevenlabs is None:
                raise VoiceStudioError("no ElevenLabs resource configured")
            try:
                spoken, lines = self.elevenlabs.synthesize(
                    sentences, record.language, str(record.provider_voice_id), record.settings,
                    model_id, output_format, out_wav, api_key_env=self.api_key_env,
                    prices=self.prices,
                )  # fmt: skip
            except ElevenLabsError as exc:
                self._ledger(owner, exc.spent)
                raise
            self._ledger(owner, lines)
        if count_use:
            self.record_use(owner, name)
        return spoken

    def _ledger(self, owner: str, lines: list) -> None:
        stamped = [line.model_copy(update={"stage": "voice_test"}) for line in lines]
        project_db.record_costs(self.engine, stamped, owner=owner)

    def update_settings(self, owner: str, name: str, **settings: Any) -> VoiceRecord:
        """Validates the merged settings and, for a cloned voice, stores them at ElevenLabs
        first (if the provider refuses, nothing changes here either)."""
        record = self.get(owner, name)
        given = {k: v for k, v in settings.items() if v is not None}
        merged = validate_settings(record.provider, {**record.settings, **given})
        if record.provider == "elevenlabs" and record.provider_voice_id:
            if self.elevenlabs is None:
                raise VoiceStudioError("no ElevenLabs resource configured")
            self.elevenlabs.push_settings(
                record.provider_voice_id, merged, api_key_env=self.api_key_env
            )
        return self._update(record, settings=merged)

    def delete(self, owner: str, name: str) -> None:
        """Deletes the voice here and at the provider. A voice the provider no longer has
        (404) is deleted here too; any other provider error keeps the row, so no clone is
        left behind at ElevenLabs without a record of it."""
        record = self.get(owner, name)
        if record.provider == "elevenlabs" and record.provider_voice_id:
            if self.elevenlabs is None:
                raise VoiceStudioError("no ElevenLabs resource configured")
            try:
                self.elevenlabs.delete_voice(record.provider_voice_id, api_key_env=self.api_key_env)
            except ProviderError as exc:
                if exc.status != 404:
                    raise
        self._forget(record)

    def record_use(self, owner: str, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                project_db.voices.update()
                .where(project_db.voices.c.owner == owner, project_db.voices.c.name == name)
                .values(usage_count=project_db.voices.c.usage_count + 1)
            )


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """(int16 samples (frames, channels), sample rate) of any audio file ffmpeg reads."""
    with tempfile.TemporaryDirectory(prefix="factory-sample-") as tmp:
        target = Path(tmp) / "sample.wav"
        run_ffmpeg(
            ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(path), "-vn",
             "-c:a", "pcm_s16le", str(target)],
            what=f"decoding {path.name}",
        )  # fmt: skip
        with wave.open(str(target), "rb") as wav:
            rate, channels = wav.getframerate(), wav.getnchannels()
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return data.reshape(-1, channels), rate
