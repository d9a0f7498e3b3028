"""Find how a model wants its pixels by trying the usual preprocessings on the user's images.

Where nothing says (no preset, no metadata, no normalisation in the graph), each candidate
(raw 0..255, /255, [-1, 1] two ways, ImageNet mean/std; RGB or BGR; the resize modes) is run on
a small sample of the user's own images. A misfed classifier answers the same class for most
photos, or is unsure of everything; the right preprocessing gives confident, varied answers,
and with labels the best accuracy. A misfed detector finds nothing, or confident boxes that
are not there: those are not found again when the same input is mirrored, where real objects
are (detectors are trained with flips). Every candidate's evidence is returned, with the choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from app.core.errors import Cancelled, UserError
from app.core.eval.agreement import compare_detections
from app.core.eval.candidate_runner import CROP_FRACTION, CandidateRunner
from app.core.frames.postprocess import Detections
from app.core.model.spec import ModelSpec, Preprocess

SAMPLE_SIZE = 32  # images tried per candidate: enough to see a collapse, seconds not minutes
COLLAPSE_SHARE = 0.9  # one class for >= 90% of images: the model is being misfed
FIRST_LOOK = 8  # a detector finding nothing on this many images is not run on the rest
CHANCE_FACTOR = 1.5  # labelled accuracy <= 1.5 x chance: the model is being misfed
# A detector whose boxes mostly vanish when its input is mirrored is seeing things: measured,
# YOLOX-Nano's tutorial export fed 0..255 instead of 0..1 finds 140 confident boxes per photo,
# 2% of them found again mirrored (94% when fed right); HaGRID's hand detector fed 0..255, 0%
MIRROR_ALARM = 0.25
THIN_EVIDENCE = 0.1  # a detector's best score under this: it found too little to judge by
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# (name, scale, mean, std): value = (pixel * scale - mean) / std
NORMALISATIONS: list[tuple[str, float, list[float], list[float]]] = [
    ("raw 0..255", 1.0, [0.0] * 3, [1.0] * 3),
    ("/255", 1 / 255, [0.0] * 3, [1.0] * 3),
    ("(x-127.5)/127.5", 1.0, [127.5] * 3, [127.5] * 3),
    ("(x-127)/128", 1.0, [127.0] * 3, [128.0] * 3),
    ("ImageNet mean/std", 1 / 255, IMAGENET_MEAN, IMAGENET_STD),
]
COLORS = ("RGB", "BGR")
RESIZES = ("resize_crop", "letterbox", "stretch")
# a detector sees the whole image: cutting 1/8 off each side (the classifiers' crop) would win by
# finding the rest larger and surer, and lose every object near an edge, which no unlabelled
# score sees
DETECTOR_RESIZES = ("letterbox", "stretch")
# tried first, and kept, when the model's spec already says it (a preset: the tutorial exports'
# short side to a size, centre-cropped); no candidate of its own otherwise
OWN_RESIZES = ("short_side_crop",)


@dataclass(frozen=True)
class Candidate:
    """One way of turning pixels into the model's input."""

    norm: str
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    color: str
    resize: str

    @property
    def name(self) -> str:
        return f"{self.norm}, {self.color}, {self.resize}"

    def apply(self, pre: Preprocess) -> Preprocess:
        """`pre` with this candidate's pixel handling (size and layout kept)."""
        crop = CROP_FRACTION if self.resize == "resize_crop" else pre.crop_fraction
        return replace(
            pre,
            scale=self.scale,
            mean=list(self.mean),
            std=list(self.std),
            color=self.color,
            resize=self.resize,
            crop_fraction=crop if self.resize == "resize_crop" else 1.0,
            short_side=pre.short_side if self.resize == "short_side_crop" else None,
        )


@dataclass
class Evidence:
    """How the model answered one candidate's inputs on the sample."""

    candidate: Candidate
    score: float  # what the choice maximises: labelled, accuracy and the right class's
    # probability; else mean confidence x how evenly the answers spread over classes
    top_share: float  # fraction of images given the single most common class
    mean_confidence: float  # mean top-1 probability
    classes_seen: int  # distinct top-1 classes over the sample
    accuracy: float | None  # top-1 over labelled images, None without labels
    alarm: str  # "check preprocessing" message, "" when predictions look healthy
    # detectors: share of images where something was found, objects found per image, and
    # how many of the boxes are found again (same class, IoU >= 0.5) in the mirrored input
    found_share: float | None = None
    objects: float | None = None
    mirror_agreement: float | None = None

    def row(self) -> dict[str, object]:
        acc = None if self.accuracy is None else round(self.accuracy, 4)
        more = (
            {}
            if self.objects is None
            else {
                "images_with_finds": round(self.found_share or 0.0, 4),
                "objects_per_image": round(self.objects, 2),
                "mirror_agreement": round(self.mirror_agreement or 0.0, 4),
            }
        )
        return more | {
            "candidate": self.candidate.name,
            "norm": self.candidate.norm,
            "color": self.candidate.color,
            "resize": self.candidate.resize,
            "score": round(self.score, 4),
            "top_class_share": round(self.top_share, 4),
            "mean_confidence": round(self.mean_confidence, 4),
            "classes_seen": self.classes_seen,
            "accuracy": acc,
            "alarm": self.alarm,
        }


@dataclass
class SearchResult:
    """Every candidate's evidence (in the order tried), the chosen one and what was pruned."""

    evidence: list[Evidence]
    chosen: int  # index into evidence
    images: int
    labelled: int
    classes: int
    notes: list[str]
    task: str = "classification"

    @property
    def choice(self) -> Evidence:
        return self.evidence[self.chosen]

    def matching(self, pre: Preprocess) -> Evidence | None:
        """The evidence for the candidate that feeds what `pre` feeds, if one was tried."""
        for ev in self.evidence:
            c = ev.candidate
            if (c.color, c.resize) == (pre.color, pre.resize) and np.allclose(
                [c.scale, *c.mean, *c.std], [pre.scale, *pre.mean, *pre.std], rtol=1e-3
            ):
                return ev
        return None

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "labelled": self.labelled,
            "classes": self.classes,
            "task": self.task,
            "chosen": self.choice.candidate.name,
            "rows": [e.row() | {"chosen": i == self.chosen} for i, e in enumerate(self.evidence)],
            "notes": self.notes,
        }


def collapse_alarm(top_share: float, classes: int, accuracy: float | None = None) -> str:
    """'check preprocessing' with the figures when predictions collapse onto one class or
    labelled accuracy is near chance; '' otherwise. Shares and accuracy are fractions 0..1."""
    if classes < 2:
        return ""
    chance = 1 / classes
    if top_share >= COLLAPSE_SHARE:
        return (
            f"check preprocessing: {top_share:.0%} of the images get the same class "
            f"(a healthy classifier spreads its answers over the {classes} classes)"
        )
    if accuracy is not None and accuracy <= CHANCE_FACTOR * chance:
        return (
            f"check preprocessing: top-1 accuracy {accuracy:.1%} is near chance "
            f"({chance:.1%} for {classes} classes)"
        )
    return ""


def sample(paths: list[Path], n: int = SAMPLE_SIZE) -> list[Path]:
    """`n` paths spread evenly over the sorted list (class-named folders all get some)."""
    if len(paths) <= n:
        return list(paths)
    step = len(paths) / n
    return [paths[int(i * step)] for i in range(n)]


def _probabilities(rows: np.ndarray) -> np.ndarray:
    rows = rows.reshape(rows.shape[0], -1).astype(np.float64)
    if np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
        return rows
    z = rows - rows.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _judge(cand: Candidate, probs: np.ndarray, truth: list[set[int]] | None) -> Evidence:
    top = probs.argmax(axis=1)
    n, classes = probs.shape
    counts = np.bincount(top, minlength=classes)
    share = float(counts.max() / n)
    conf = float(probs.max(axis=1).mean())
    p = counts[counts > 0] / n
    # entropy of the answers relative to its most possible: 1 = every image its own class
    spread = max(0.0, float(-(p * np.log(p)).sum() / math.log(min(n, classes)))) if n > 1 else 0.0
    accuracy = None
    score = conf * spread
    if truth and any(truth):
        rows = [i for i, t in enumerate(truth) if t]
        accuracy = float(np.mean([top[i] in truth[i] for i in rows]))
        # the probability given to the right class: accuracy that also counts near misses,
        # so a handful of labelled images does not decide by one image's flip
        right = float(np.mean([max(probs[i, c] for c in truth[i]) for i in rows]))
        score = 0.5 * accuracy + 0.5 * right
    if accuracy is None and share >= COLLAPSE_SHARE:
        score *= 0.1  # a collapse is misfeeding even when the model is sure of itself
    alarm = collapse_alarm(share, classes, accuracy)
    return Evidence(cand, score, share, conf, int((counts > 0).sum()), accuracy, alarm)


def mirror_agreement(finds: list[Detections], mirrored: list[Detections], width: int) -> float:
    """Mean agreement (same class, IoU >= 0.5) between each image's boxes and those of its
    mirrored input flipped back, over the images where either view found something; 0.0
    when neither ever did."""
    scores = []
    for straight, mirror in zip(finds, mirrored):
        if len(straight) == 0 and len(mirror) == 0:
            continue
        back = mirror.boxes.astype(np.float32).copy()
        back[:, [0, 2]] = width - back[:, [2, 0]]
        flipped = Detections(back, mirror.scores, mirror.class_ids)
        scores.append(compare_detections(straight, flipped).score)
    return float(np.mean(scores)) if scores else 0.0


def _judge_detections(
    cand: Candidate, finds: list[Detections], mirrored: list[Detections], cap: int, width: int
) -> Evidence:
    """A detector is well fed when it finds a few objects in most photos, surely, and finds
    them again in the mirrored input: nothing on most images, `cap` (max detections) on many,
    or boxes the mirror does not repeat, is misfeeding."""
    counts = np.array([len(d) for d in finds], float)
    found = (counts > 0) & (counts < cap)
    share = float(found.mean())
    best = (
        float(np.mean([d.scores.max() for d, f in zip(finds, found) if f])) if found.any() else 0.0
    )
    mirror = mirror_agreement(finds, mirrored, width)
    alarm = ""
    if (counts == 0).mean() >= COLLAPSE_SHARE:
        alarm = f"check preprocessing: nothing found on {(counts == 0).mean():.0%} of the images"
    elif (counts >= cap).mean() >= 0.5:
        alarm = (
            f"check preprocessing: {cap} or more objects on {(counts >= cap).mean():.0%} of the "
            "images (it finds everything)"
        )
    elif share >= 0.5 and mirror < MIRROR_ALARM:
        alarm = (
            f"check preprocessing: only {mirror:.0%} of its boxes are found again in the "
            "mirrored image (a misfed detector sees things that are not there)"
        )
    score = share * best * mirror * (0.1 if alarm else 1.0)
    return Evidence(cand, score, 0.0, best, 0, None, alarm, share, float(counts.mean()), mirror)


def _same_aspect(images: list[np.ndarray], size: list[int]) -> bool:
    """Every image already has the model's aspect ratio: the resize modes give one input."""
    want = size[1] / size[0]
    return all(abs(im.shape[1] / im.shape[0] - want) < 0.02 for im in images)


def search_preprocessing(
    spec: ModelSpec,
    images: list[np.ndarray],
    truth: list[set[int]] | None = None,
    *,
    model_file: Path | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    detect: Callable[[list[np.ndarray], Preprocess], Detections] | None = None,
) -> SearchResult:
    """Try the candidates on `images` (BGR uint8, ~32); `truth` gives each image's accepted
    classes (empty set: unknown). A detector needs `detect(outputs, preprocess)` -> its
    detections in one image, boxes in input pixels (its decoders sit above this package). Pruned
    in two rounds: every scaling and colour order at the spec's resize mode, then the other
    resize modes for the winner (none when all images already have the model's aspect ratio:
    the modes would feed the same pixels). UserError for no images or a uint8 input."""
    model_file = Path(model_file or spec.path)
    detector = spec.task == "detection"
    if (detector and detect is None) or (not detector and spec.postprocess.decoder != "classifier"):
        raise UserError(
            f"{model_file}: finding preprocessing works on classifiers and decoded detectors; "
            f"this model is a {spec.task or 'model'} ({spec.postprocess.decoder}): set its "
            "preprocessing by hand"
        )
    if spec.preprocess.input_dtype == "uint8":
        raise UserError(f"{model_file}: a uint8 input takes pixels as they are; nothing to find")
    if not images:
        raise UserError("no readable images to try preprocessings on: choose a folder of photos")
    report = progress or (lambda f, m: None)
    stop = cancelled or (lambda: False)
    runner = CandidateRunner(spec, model_file, images)
    notes: list[str] = []
    own, modes = spec.preprocess.resize, DETECTOR_RESIZES if detector else RESIZES
    first = own if own in modes + OWN_RESIZES else modes[0]
    others = [mode for mode in modes if mode != first]
    round1 = [
        Candidate(n, s, tuple(m), tuple(d), c, first)
        for n, s, m, d in NORMALISATIONS
        for c in COLORS
    ]
    same = _same_aspect(images, spec.preprocess.size)
    total = len(round1) + (0 if same else len(others))
    evidence: list[Evidence] = []
    classes: list[int] = []

    def judge(cand: Candidate) -> Evidence:
        if stop():
            raise Cancelled()
        report(len(evidence) / total, cand.name)
        if detector and detect is not None:
            pre = cand.apply(spec.preprocess)
            finds = [detect(outs, pre) for outs in runner.run_each(cand, 0, FIRST_LOOK)]
            if any(len(d) for d in finds):  # nothing on the first few: misfed, no need for more
                finds += [detect(o, pre) for o in runner.run_each(cand, FIRST_LOOK)]
            mirrored = [detect(o, pre) for o in runner.run_each(cand, 0, len(finds), mirrored=True)]
            ev = _judge_detections(cand, finds, mirrored, spec.postprocess.max_det, pre.size[1])
            classes.append(len(spec.labels))
        else:
            probs = _probabilities(runner.run(cand))
            classes.append(probs.shape[1])
            ev = _judge(cand, probs, truth)
        evidence.append(ev)
        return ev

    try:
        best = max((judge(c) for c in round1), key=lambda e: e.score)
        if same:
            notes.append("every image already has the model's aspect ratio: resize modes not tried")
        else:
            for mode in others:
                judge(replace(best.candidate, resize=mode))
    except (UserError, Cancelled):
        raise
    except Exception as exc:  # ORT raises several unrelated types for inputs it cannot take
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(
            f"{model_file}: ONNX Runtime cannot run these inputs ({first_line})"
        ) from exc
    # ties (e.g. two near-identical [-1, 1] scalings) go to the first tried
    chosen = max(range(len(evidence)), key=lambda i: (round(evidence[i].score, 4), -i))
    labelled = sum(1 for t in truth or [] if t)
    if detector and evidence[chosen].score < THIN_EVIDENCE:
        notes.append(
            f"thin evidence: at best, objects in {evidence[chosen].found_share or 0:.0%} of the "
            "images: try a folder of images that show what this model detects"
        )
    notes.insert(
        0,
        "chosen by objects found in most images, surely, and found again in the mirrored image"
        if detector
        else "chosen by accuracy and the right class's probability"
        if labelled
        else "chosen by confident, varied answers",
    )
    report(1.0, "done")
    task = "detection" if detector else "classification"
    return SearchResult(evidence, chosen, len(images), labelled, classes[0], notes, task)
