"""What one scoring of a generated folder is asked for: the metrics, their protocol and the weights to use.

``ScoreSettings`` carries the options of eval/score.py (one field per option, same names and defaults), so the
script, ``uniemo.generation_scores.score_folder`` and eval/tiny_scores.py share one definition. ``validate``
refuses combinations that cannot work before anything is loaded. No torch import here: eval/score.py builds its
``--help`` from these values.
"""

from __future__ import annotations

from dataclasses import dataclass

METRICS: tuple[str, ...] = ("fid", "lpips", "emo_a", "sem_c", "sem_d")
KINDS: tuple[str, ...] = ("generate", "transfer")  # manifest kinds that have one intended emotion
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
DEFAULT_FID_EXTRACTOR = "inception-v3-compat"  # torch-fidelity's FID extractor
# The summary key of FID names its feature extractor; any other torch-fidelity extractor X gives fid_X
FID_SUMMARY_KEYS = {DEFAULT_FID_EXTRACTOR: "fid_inception", "clip": "fid_clip"}
DEFAULT_CACHE_DIR = "~/.cache/uniemo/fid-reference"  # the FID reference statistics, one file per reference set
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's download, in $TORCH_HOME
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet (ImageNet V1), in $TORCH_HOME/hub/checkpoints
EMOGEN_CLIP = "openai/clip-vit-large-patch14"  # the CLIP of EmoGen's Emo-A head and Sem-D
EMOGEN_COMPAT_PAIRS = 10
EMOGEN_QUIRKS: tuple[str, ...] = (
    "LPIPS fed [0, 1] images (LPIPS expects [-1, 1])",
    "pairs of emotion k drawn from the images of emotions 0..k (the pool is never reset)",
    f"{EMOGEN_COMPAT_PAIRS} pairs per emotion",
    "Sem-D CLIP inputs rescaled by 1/255 twice (near-black images)",
)


@dataclass
class ScoreSettings:
    """The options of one scoring run (eval/score.py's flags without the dashes)."""

    metrics: tuple[str, ...] = METRICS
    kind: str = "generate"  # which manifest images to score
    seed: int = 0  # seed of the LPIPS / Sem-D pairs
    pairs: int = 100  # LPIPS / Sem-D pairs per emotion (EMOGEN_COMPAT_PAIRS with emogen_compat)
    emogen_compat: bool = False  # reproduce EmoGen's evaluation quirks (EMOGEN_QUIRKS)
    batch_size: int = 32
    device: str = "auto"
    # FID
    reference: str | None = None  # reference folder: <emotion>/*.jpg|png per emotion
    reference_from_dataset: str | None = None  # NAME:ROOT:SPLIT, e.g. emoshapes:data/emoshapes:test
    inception_weights: str | None = None  # a local INCEPTION_FILE
    fid_feature_extractor: str = DEFAULT_FID_EXTRACTOR  # a torch-fidelity extractor name, or "clip"
    fid_size: int = 299  # images are resized to this square first
    cache_dir: str = DEFAULT_CACHE_DIR  # the FID reference statistics are kept here ("~" expanded)
    no_cache: bool = False  # extract the reference features again and keep nothing
    # LPIPS
    alexnet_weights: str | None = None  # a local ALEXNET_FILE
    lpips_random_trunk: bool = False  # tests only: the number is labelled as such and is not LPIPS
    # CLIP metrics (Emo-A, the CLIP variant of Sem-C, Sem-D)
    emo_probe: str | None = None  # train/probe.py run folder (probe_layers=1) for Emo-A
    emogen_head: str | None = None  # EmoGen's Emo-A head (.pt/.pth, Linear(768, 8))
    clip: str | None = None  # default: the probe run's CLIP, else EMOGEN_CLIP
    # Sem-C with two ResNet-50s (without them: the CLIP zero-shot variant over attribute_names)
    places365_weights: str | None = None
    imagenet_weights: str | None = None
    attribute_names: str | None = None  # JSON {scenes, objects} or one name a line; default: the model's

    @property
    def fid_summary_key(self) -> str:
        """The summary key of FID: ``fid_inception``, ``fid_clip``, or ``fid_<extractor>`` (``-`` as ``_``)."""
        name = self.fid_feature_extractor
        return FID_SUMMARY_KEYS.get(name) or "fid_" + "".join(c if c.isalnum() else "_" for c in name)

    def validate(self) -> None:
        """Refuse what cannot be scored, naming eval/score.py's option that is missing."""
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ValueError(f"unknown metric(s) {unknown} in --metrics; choose from {', '.join(METRICS)}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.kind not in KINDS:
            raise ValueError(f"--kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if "fid" in self.metrics and not (self.reference or self.reference_from_dataset):
            raise ValueError("FID needs reference images: pass --reference DIR or --reference-from-dataset "
                             "NAME:ROOT:SPLIT (or leave fid out of --metrics)")
        if "emo_a" in self.metrics and not (self.emo_probe or self.emogen_head):
            raise ValueError("Emo-A needs a scorer: --emo-probe RUN (train/probe.py) or --emogen-head FILE "
                             "(or leave emo_a out of --metrics)")
        if self.emo_probe and self.emogen_head:
            raise ValueError("pass either --emo-probe or --emogen-head, not both")
        if bool(self.places365_weights) != bool(self.imagenet_weights):
            raise ValueError("Sem-C needs both --places365-weights and --imagenet-weights "
                             "(or neither: the CLIP variant)")
